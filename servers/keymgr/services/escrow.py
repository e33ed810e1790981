"""Escrowed card keys (seed E3) and shares of split keys (E4): kept sealed under the master key,
and sealed again, after the owner logged in, to the transport key a (new) card generated, so only
that card opens them and the terminal never sees them. Server-assisted restore (E6) opens a value
the vault holds with an escrowed key and seals it to the card."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import httpx

from apdu import backup as b
from apdu import keys as k
from apdu import seal
from apdu.certificate import Certificate, CertificateError, Mode, value_hash
from apdu.signature import valid_public_key
from apdu.wallet import MessageError

from ...serverkey import MasterKey, ServerKey
from ...statements import Fetch
from ...tls import TlsError, untrusted_reason, verify_context
from ..config import KeyManagerConfig
from ..errors import KeyManagerError
from ..repository import PER_VALUE, SHAMIR, Account, Escrow, KeyManagerRepository
from ..signatures import signed_by_card_or_us
from .cards import Cards


def _escrow_aad(card_id: bytes, key_id: bytes, mode: int) -> bytes:
    return b"EVB-ESCROW-1" + card_id + key_id + bytes((mode,))


class Escrows:
    """``key`` opens what cards seal to the key manager; ``signer`` signs the requests to the
    vault (one key, one use)."""

    def __init__(self, repo: KeyManagerRepository, key: ServerKey, master: MasterKey, signer: ServerKey,
                 config: KeyManagerConfig, cards: Cards) -> None:
        self.repo, self.key, self.master, self.signer, self.config, self.cards = repo, key, master, signer, config, cards
        self._asked_vault_key: bytes | None = None

    def escrow(self, account: Account, card_id: bytes, key_id: bytes, mode: int, sealed: bytes) -> None:
        """Seed E3 steps 1-4..1-6: keep the card's exported key material (d || Q, or K) for this
        owner, once its d is Q's private key and Q is the key id's."""
        material = self._open_from_card(card_id, key_id, mode, sealed, k.export_context(card_id, key_id))
        try:
            fits = k.check_material(material, k.KeyMode(mode)).key_id == key_id
        except MessageError:
            fits = False
        if not fits:
            raise KeyManagerError(400, "the sealed key is not the key it claims to be")
        self._keep(account, Escrow(card_id, key_id, mode, material, int(time.time())), self.repo.put_escrow, b"")

    def escrow_share(self, account: Account, card_id: bytes, key_id: bytes, mode: int, sealed: bytes,
                     per_value: bool = False) -> None:
        """Seed E4 steps 1-6/1-7: keep share 1 of the card's split key for this owner (with Q in
        public mode: the public half a new card checks the rebuilt d against): of the 2-of-3
        split, or (``per_value``, claim 7) the part 405 whose other half rides with every
        registered value. One of each kind kept per key, side by side: making one does not undo
        the other (a recovery code stays good after a per-value backup, and the other way round)."""
        context = k.part_context(card_id, key_id, k.KEYMGR_PART) if per_value else k.share_context(card_id, key_id, 1)
        plain = self._open_from_card(card_id, key_id, mode, sealed, context)
        try:
            k.parse_server_share(plain, k.KeyMode(mode), key_id, 1)
        except MessageError as exc:
            raise KeyManagerError(400, f"not the key manager's share of a split key: {exc}") from exc
        kind = PER_VALUE if per_value else SHAMIR
        self._keep(account, Escrow(card_id, key_id, mode, plain, int(time.time())),
                   lambda e, name: self.repo.put_share(e, name, kind), b"share")

    def restore(self, account: Account, card_id: bytes, target_card_id: bytes,
                transport_key: bytes) -> tuple[int, bytes, bytes]:
        """Seed E3 steps 2-1..2-3, sealed for the target card: answers (mode, key id, blob)."""
        e = self._latest(account, card_id, self.repo.escrows, "key")
        mode, key_id, blob, _ = self._seal_for(account, e, target_card_id, transport_key, b"",
                                               k.import_context(target_card_id, k.KeyMode(e.mode)))
        return mode, key_id, blob

    def generate(self, account: Account, card_id: bytes, mode: int, transport_key: bytes) -> tuple[int, bytes, bytes]:
        """Claim 6: the key manager makes the card's key, escrows it, and delivers it sealed to a
        transport key the card generated (for cards that cannot make good keys themselves)."""
        if mode not in (k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC):
            raise KeyManagerError(400, "the mode is public or symmetric")
        self.cards.key_of(account, card_id)
        material = k.generate_material(k.KeyMode(mode))
        key_id = k.key_info_of(material, k.KeyMode(mode)).key_id
        try:  # sealed for the card before anything is kept: a refused request stores no escrow
            blob = seal.seal(transport_key, material, k.import_context(card_id, k.KeyMode(mode)))
        except seal.SealError as exc:
            raise KeyManagerError(400, "the transport key is not a P-256 public key") from exc
        self._keep(account, Escrow(card_id, key_id, mode, material, int(time.time())), self.repo.put_escrow, b"")
        self.repo.log(account.name, f"key {key_id.hex()} of card {card_id.hex()} sealed for card {card_id.hex()}",
                      int(time.time()))
        return mode, key_id, blob

    def restore_share(self, account: Account, card_id: bytes, target_card_id: bytes, transport_key: bytes,
                      kind: str = SHAMIR, key_id: bytes | None = None) -> tuple[int, bytes, bytes, bytes]:
        """The key manager's share of ``kind``, sealed for the target card: one of the k it needs;
        of key ``key_id``, or of the newest key. Answers (mode, key id, blob, Q): Q (empty in
        symmetric mode) goes beside, for IMPORT SHARE. A per-value part of a key escrowed only
        whole (made or re-keyed by us, or rotated on the card) is made from it: whoever may have
        the whole key may have its part."""
        what = "per-value part" if kind == PER_VALUE else "2-of-3 share"
        shares = [e for e in self._kept(account, card_id, lambda c: self.repo.shares(c, kind))
                  if key_id is None or e.key_id == key_id]
        if shares:
            e = shares[-1]
            return self._seal_for(account, e, target_card_id, transport_key, b"share",
                                  k.share_import_context(target_card_id, e.key_id))
        whole = [e for e in self._kept(account, card_id, self.repo.escrows) if key_id is None or e.key_id == key_id]
        if kind != PER_VALUE or not whole:
            of = f"key {key_id.hex()}" if key_id is not None else "the key"
            raise KeyManagerError(404, f"no {what} of {of} of that card is escrowed in this account")
        e = whole[-1]
        part = k.keymgr_part(self.material(e), k.KeyMode(e.mode))
        return self._seal(account, e, part[:k.SHARE_LEN], target_card_id, transport_key, "share",
                          k.share_import_context(target_card_id, e.key_id)) + (part[k.SHARE_LEN:],)

    # the steps both kinds of escrow share

    def _open_from_card(self, card_id: bytes, key_id: bytes, mode: int, sealed: bytes, context: bytes) -> bytes:
        if len(card_id) != 8 or len(key_id) != 8 or mode not in (k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC):
            raise KeyManagerError(400, "a card id and a key id are 8 bytes, the mode public or symmetric")
        try:
            return self.key.open_sealed(sealed, context)
        except seal.SealError as exc:
            raise KeyManagerError(400, f"the sealed key does not open: {exc}") from exc

    def _keep(self, account: Account, e: Escrow, put: Callable[[Escrow, str], None], kind: bytes) -> None:
        self.cards.key_of(account, e.card_id)
        blob = self.master.seal(e.sealed_seed, _escrow_aad(e.card_id, e.key_id, e.mode) + kind)
        put(Escrow(e.card_id, e.key_id, e.mode, blob, e.created_at), account.name)

    def _latest(self, account: Account, card_id: bytes, kept: Callable[[bytes], list[Escrow]], what: str) -> Escrow:
        found = self._kept(account, card_id, kept)
        if not found:
            raise KeyManagerError(404, f"no {what} of that card is escrowed in this account")
        return found[-1]

    def _kept(self, account: Account, card_id: bytes, kept: Callable[[bytes], list[Escrow]]) -> list[Escrow]:
        """What is kept of a card of this account, oldest first (nothing of another's card)."""
        return kept(card_id) if card_id in self.repo.cards(account.id) else []

    def _seal_for(self, account: Account, e: Escrow, target_card_id: bytes, transport_key: bytes, kind: bytes,
                  context: bytes) -> tuple[int, bytes, bytes, bytes]:
        """Seal the escrowed key material, or a share (and answer the Q kept beside it)."""
        secret = self.master.open(e.sealed_seed, _escrow_aad(e.card_id, e.key_id, e.mode) + kind)
        public = b""
        if kind:
            secret, public = secret[:k.SHARE_LEN], secret[k.SHARE_LEN:]
        return self._seal(account, e, secret, target_card_id, transport_key, "share" if kind else "key",
                          context) + (public,)

    def _seal(self, account: Account, e: Escrow, secret: bytes, target_card_id: bytes, transport_key: bytes,
              what: str, context: bytes) -> tuple[int, bytes, bytes]:
        if len(target_card_id) != 8:
            raise KeyManagerError(400, "a card id is 8 bytes")
        self.cards.key_of(account, target_card_id)
        try:
            blob = seal.seal(transport_key, secret, context)
        except seal.SealError as exc:
            raise KeyManagerError(400, "the transport key is not a P-256 public key") from exc
        self.repo.log(account.name, f"{what} {e.key_id.hex()} of card {e.card_id.hex()} "
                                    f"sealed for card {target_card_id.hex()}", int(time.time()))
        return e.mode, e.key_id, blob

    # --- server-assisted restore (E6) -----------------------------------------------------------

    def assisted_restore(self, account: Account, card_id: bytes, certificate: bytes, transport_key: bytes,
                         fetch: Callable[[Fetch, bytes], bytes] | None = None) -> bytes:
        """Seed E6 steps: fetch the registered value from the vault by certificate, check the
        backing card's signature and the certificate's X, open it with the escrowed key, and
        seal the value to ``card_id``'s transport key under ECDH with our own key, so neither
        the terminal nor the vault sees it and only we could have sent it."""
        self.cards.key_of(account, card_id)
        cert, registered = self.fetch_registered(account, certificate, fetch)
        escrow = next((e for e in self.repo.escrows(cert.card_id) if e.key_id == registered.key_id), None)
        if escrow is None:
            raise KeyManagerError(404, "the key that encrypted this value is not escrowed here")
        material = self.material(escrow)
        try:
            value = k.open_value(material, k.KeyMode(escrow.mode), registered.ciphertext, cert.card_id)
            secret = self.key.ecdh(transport_key)
        except (seal.SealError, ValueError) as exc:
            raise KeyManagerError(400, f"cannot open the value or reach the card's key: {exc}") from exc
        self.repo.log(account.name, f"value {cert.counter} of card {cert.card_id.hex()} restored via the key "
                                    f"manager for card {card_id.hex()}", int(time.time()))
        return seal.seal_symmetric(secret, value, k.assisted_context(card_id, certificate))

    def vault_key(self) -> bytes:
        """The public key of our vault: the audience of what we sign for it and of what cards
        signed for it. Given, or asked of the vault once (over TLS) and kept."""
        if self.config.vault_key is not None:
            return self.config.vault_key
        if self._asked_vault_key is None:
            if not self.config.vault_url:
                raise KeyManagerError(503, "this key manager knows no vault (start it with --vault URL)")
            try:
                response = httpx.get(f"{self.config.vault_url.rstrip('/')}/v1/vault", timeout=10.0,
                                     verify=verify_context(self.config.vault_ca))
                response.raise_for_status()
                key = base64.b64decode(response.json()["public_key"])
            except (httpx.HTTPError, TlsError, ValueError, KeyError) as exc:
                raise KeyManagerError(503, f"cannot reach the vault for its key: {untrusted_reason(exc) or exc}") from exc
            if not valid_public_key(key):
                raise KeyManagerError(503, "the vault's key is not a P-256 public key")
            self._asked_vault_key = key
        return self._asked_vault_key

    def fetch_registered(self, account: Account, certificate: bytes,
                         fetch: Callable[[Fetch, bytes], bytes] | None = None) -> tuple[Certificate, b.RegisteredValue]:
        """The registered value an encrypted backup's certificate names, fetched from the vault
        with our signed request and checked: signed by the backing card (or by us, for a value
        we re-sealed in a re-keying), X and digest the certificate's. The backing card must be
        enrolled in this account."""
        try:
            cert = Certificate.from_bytes(certificate)
        except CertificateError as exc:
            raise KeyManagerError(400, f"malformed certificate: {exc}") from exc
        if cert.mode != Mode.ENCRYPTED:
            raise KeyManagerError(400, "a plain backup is under no key: the vault restores it directly")
        source_key = self.cards.key_of(account, cert.card_id)
        vault_key = self.vault_key()
        request = Fetch(certificate, int(time.time()))
        raw = (fetch or self._fetch)(request, self.signer.sign(request.message(vault_key)))
        try:
            registered = b.RegisteredValue.from_bytes(raw)
        except ValueError as exc:
            raise KeyManagerError(409, "the vault answered no registered value") from exc
        if not signed_by_card_or_us(self.signer.public_key, registered, cert.card_id, source_key, vault_key):
            raise KeyManagerError(409, "the registered value's card signature is not valid: refused")
        if value_hash(registered.ciphertext) != cert.value_hash or registered.digest != cert.digest:
            raise KeyManagerError(409, "the registered value does not match the certificate: refused")
        return cert, registered

    def material(self, e: Escrow) -> bytes:
        """An escrowed key's material (d || Q, or K), opened from under the master key."""
        return self.master.open(e.sealed_seed, _escrow_aad(e.card_id, e.key_id, e.mode))

    def _fetch(self, request: Fetch, signature: bytes) -> bytes:
        body = {"certificate": base64.b64encode(request.certificate).decode(), "issued_at": request.issued_at,
                "signature": base64.b64encode(signature).decode()}
        return base64.b64decode(self.post_to_vault("/v1/keymgr/registered-values", body)["registered_value"])

    def post_to_vault(self, path: str, body: dict[str, object]) -> dict[str, str]:
        """A signed service-to-service request to our vault; its refusal becomes ours (a 5xx a 502)."""
        if not self.config.vault_url:
            raise KeyManagerError(503, "this key manager knows no vault (start it with --vault URL)")
        try:
            response = httpx.post(f"{self.config.vault_url.rstrip('/')}{path}", json=body,
                                  timeout=10.0, verify=verify_context(self.config.vault_ca))
        except (httpx.HTTPError, TlsError) as exc:
            raise KeyManagerError(503, f"cannot reach the vault: {untrusted_reason(exc) or exc}") from exc
        if response.status_code >= 400:
            detail = response.json().get("detail", response.text) if response.headers.get(
                "content-type", "").startswith("application/json") else response.text
            status = response.status_code if response.status_code < 500 else 502
            raise KeyManagerError(status, f"the vault refused: {detail}")
        answer: dict[str, str] = response.json()
        return answer
