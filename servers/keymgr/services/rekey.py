"""Re-keying driven by the key manager (seed E7/E8, claims 16, 17, 46): the second rotation mode.

After the owner proves the account's factors (step-up), the key manager makes the card's next
key and escrows it with the job, in one transaction (the card's old key is the newest escrowed
one). Then, per certificate the card holds, it fetches the registered value from the vault with
the signed request of E6 (:meth:`Escrows.fetch_registered`), opens it with the escrowed key of
the card that sealed it, re-seals the value under the new key for this card (with the vault's
part of the new key, tag 83, as a card's own backup carries it), signs the new registered value
(REKEYED) and has the vault register it as the old one's successor (REKEY;
:meth:`servers.vault.service.VaultService.replace_registration`); last it seals the new key to
the card's transport key under ECDH with its own key, for REPLACE KEY. The rotation's finish
(:meth:`Rotations.finish_rotation`) then destroys the old key, as in the card-side mode.

Each step is idempotent: the job answers the same key until it is finished, the sealing of a
value is deterministic per key (the vault finds the successor it registered before), and a
certificate already under the new key is answered as it is.
"""

from __future__ import annotations

import base64
import time
from dataclasses import replace

from apdu import backup as b
from apdu import keys as k
from apdu import rekey as rk
from apdu import seal

from ...serverkey import MasterKey, ServerKey
from ...statements import Rekey
from ...wire import b64
from ..errors import KeyManagerError
from ..repository import Account, Escrow, KeyManagerRepository
from .accounts import SteppedUp
from .cards import Cards
from .escrow import Escrows, _escrow_aad


class Rekeys:
    """``key`` seals the new key to the card (ECDH with its transport key); ``signer`` signs for
    the vault (one key, one use)."""

    def __init__(self, repo: KeyManagerRepository, key: ServerKey, master: MasterKey, signer: ServerKey,
                 cards: Cards, escrows: Escrows) -> None:
        self.repo, self.key, self.master, self.signer, self.cards, self.escrows = repo, key, master, signer, cards, escrows

    def begin(self, owner: SteppedUp, card_id: bytes) -> rk.RekeyJob:
        """Seed E7 steps 1-3 and 1-8: the old key found by the owner's authentication, the new pair made."""
        self.cards.key_of(owner, card_id)
        under_way = self.repo.rotation(card_id)
        if under_way is None:
            escrows = self.repo.escrows(card_id)
            if not escrows:
                raise KeyManagerError(404, "no key of this card is escrowed here, so the key manager cannot open its "
                                           "backups (a split key's share is not enough): back the key up with 'evb "
                                           "key backup', or restore it first")
            old = escrows[-1]
            material = k.generate_material(k.KeyMode(old.mode))
            new_id = k.key_info_of(material, k.KeyMode(old.mode)).key_id
            sealed = self.master.seal(material, _escrow_aad(card_id, new_id, old.mode))
            under_way = self.repo.begin_rekey(card_id, old.key_id, Escrow(card_id, new_id, old.mode, sealed,
                                                                          int(time.time())), owner.name)
        new = self._escrow(card_id, under_way[1])
        return rk.RekeyJob(k.KeyMode(new.mode), under_way[0], new.key_id)

    def rekey_value(self, owner: Account, card_id: bytes, certificate: bytes) -> rk.Succession:
        """Seed E7 steps 1-4..1-11 for one certificate the card holds (its own, or handed over)."""
        self.cards.key_of(owner, card_id)
        new = self._escrow(card_id, self._under_way(card_id)[1])
        cert, registered = self.escrows.fetch_registered(owner, certificate)
        if registered.key_id == new.key_id:
            return rk.Succession(certificate, b"")  # moved already
        old = next((e for e in self.repo.escrows(cert.card_id) if e.key_id == registered.key_id), None)
        if old is None:
            raise KeyManagerError(404, "the key that encrypted this value is not escrowed here: it cannot be "
                                       "re-keyed")
        try:
            value = k.open_value(self.escrows.material(old), k.KeyMode(old.mode), registered.ciphertext,
                                 cert.card_id)
        except seal.SealError as exc:
            raise KeyManagerError(409, f"the escrowed key does not open the value: {exc}") from exc
        vault_key = self.escrows.vault_key()
        material, mode = self.escrows.material(new), k.KeyMode(new.mode)
        # with the vault's part 406 of the new key, as a card's own backup carries it (claims 7/31):
        # a re-keyed value serves a per-value key restore like any other
        resealed = b.RegisteredValue(cert.digest, new.key_id, k.seal_value(material, mode, value, card_id),
                                     key_part=k.sealed_vault_part(material, mode, card_id, vault_key))
        resealed = replace(resealed, signature=self.signer.sign(rk.rekeyed_message(resealed, card_id, vault_key)))
        request = Rekey(card_id, certificate, resealed.to_bytes(), int(time.time()))
        answer = self.escrows.post_to_vault("/v1/keymgr/rekeyed-values", {
            "card_id": card_id.hex(), "certificate": b64(certificate), "registered_value": b64(request.registered),
            "issued_at": request.issued_at, "signature": b64(self.signer.sign(request.message(vault_key)))})
        self.repo.log(owner.name, f"value {cert.counter} of card {cert.card_id.hex()} re-sealed under key "
                                  f"{new.key_id.hex()} of card {card_id.hex()}", int(time.time()))
        return rk.Succession(base64.b64decode(answer["certificate"]), base64.b64decode(answer["succession"]))

    def deliver_key(self, owner: Account, card_id: bytes, transport_key: bytes) -> tuple[int, bytes, bytes]:
        """Seed E7 step 1-13: the new key sealed for REPLACE KEY under ECDH(our key, the card's
        transport key), so the card knows its pinned key manager made it. Answers (mode, key id, blob)."""
        self.cards.key_of(owner, card_id)
        new = self._escrow(card_id, self._under_way(card_id)[1])
        try:
            secret = self.key.ecdh(transport_key)
        except (seal.SealError, ValueError) as exc:
            raise KeyManagerError(400, "the transport key is not a P-256 public key") from exc
        blob = seal.seal_symmetric(secret, self.escrows.material(new), rk.replace_context(card_id, k.KeyMode(new.mode)))
        self.repo.log(owner.name, f"key {new.key_id.hex()} sealed for card {card_id.hex()} to replace its key",
                      int(time.time()))
        return new.mode, new.key_id, blob

    def _under_way(self, card_id: bytes) -> tuple[bytes, bytes]:
        under_way = self.repo.rotation(card_id)
        if under_way is None:
            raise KeyManagerError(409, "no re-keying of this card is under way: begin one (POST /v1/rekeys)")
        return under_way

    def _escrow(self, card_id: bytes, key_id: bytes) -> Escrow:
        found = next((e for e in self.repo.escrows(card_id) if e.key_id == key_id), None)
        if found is None:
            raise KeyManagerError(409, "the rotation under way moves to a key not escrowed here")
        return found
