"""The wallet application as the terminal sees it: one method per card command, typed results.

Like yubikit's sessions, constructing a :class:`WalletSession` selects the applet; every card
refusal surfaces as an :class:`~apdu.ApduError` subclass naming the status word.
"""

from __future__ import annotations

import secrets
from datetime import date
from typing import TYPE_CHECKING

from apdu import SW, ApduError, CommandApdu, InvalidPinError, PinBlockedError, error_for
from apdu import wallet as w
from apdu.command import EXTENDED_MAX_NE
from apdu.deferred import deferred
from apdu.records import ValueRecord

from .processors import ApduProcessor, build_stack
from .transport import Transport, TransportError

if TYPE_CHECKING:
    from apdu import backup as b
    from apdu import keys as k
    from apdu import rekey as rk
    from apdu import rotation as r
    from apdu import triggers as t
    from apdu.certificate import DigestField
else:  # run by the first command that speaks them: reading a card's state needs none
    b, k, rk, r, t = map(deferred, ("apdu.backup", "apdu.keys", "apdu.rekey", "apdu.rotation", "apdu.triggers"))


class ValueRefusedError(ApduError):
    """The card refused to spend or use more than a value holds."""

    def __init__(self, sw: int, message: str) -> None:
        super().__init__(sw)
        self.message = message

    def __str__(self) -> str:
        return self.message


def new_puk() -> str:
    """A random unblocking code: 8 digits, about 26.6 bits against 10 tries."""
    return f"{secrets.randbelow(10**w.PUK_LEN):0{w.PUK_LEN}d}"


class UnblockRefusedError(ValueRefusedError):
    """RESET RETRY COUNTER refused: a wrong unblocking code (63Cx) or a blocked one (6983)."""


class CardProtocol:
    def __init__(self, transport: Transport, processor: ApduProcessor | None = None) -> None:
        self.transport = transport
        self.processor = processor or build_stack(transport)

    def send(self, command: CommandApdu) -> bytes:
        response = self.processor.send_apdu(command)
        if response.sw != SW.OK:
            raise error_for(response.sw, response.data)
        return response.data


class WalletSession:
    def __init__(self, transport: Transport) -> None:
        self.protocol = CardProtocol(transport)
        self.protocol.send(w.select())
        self.pin_verified = False  # by this session: release() makes the card forget it
        self._identity: b.Identity | None = None

    def _send(self, command: CommandApdu) -> bytes:
        return self.protocol.send(command)

    # --- card and PIN ------------------------------------------------------------------------

    def info(self) -> w.CardInfo:
        return w.CardInfo.from_bytes(self._send(w.get_card_info()))

    def personalize(self, pin: str, puk: str | None = None) -> str:
        """Set the PIN and the unblocking code (a random one when not given); answers the code,
        which the card never tells again."""
        puk = puk if puk is not None else new_puk()
        self._send(w.personalize(pin, puk))
        return puk

    def verify_pin(self, pin: str) -> None:
        """VERIFY, first taking the card for this program alone until the transport closes: on a
        shared reader another program could otherwise use the PIN we verify."""
        self.protocol.transport.begin_exclusive()
        self._send(w.verify(pin))
        self.pin_verified = True

    def pin_tries_remaining(self) -> int | None:
        """Tries left, or None when the PIN is already verified in this session."""
        try:
            self._send(w.verify(None))
        except ApduError as exc:
            if exc.sw & 0xFFF0 == SW.VERIFY_FAILED:
                return exc.sw & 0x0F
            if exc.sw == SW.AUTH_METHOD_BLOCKED:
                return 0
            raise
        return None

    def change_pin(self, old: str, new: str) -> None:
        self.protocol.transport.begin_exclusive()
        self._send(w.change_pin(old, new))
        self.pin_verified = True  # the card counts the old PIN as verified

    def unblock_pin(self, puk: str, new_pin: str) -> None:
        """RESET RETRY COUNTER: a new PIN with full tries, with the unblocking code."""
        try:
            self._send(w.reset_retry_counter(puk, new_pin))
        except InvalidPinError as exc:
            raise UnblockRefusedError(exc.sw, f"wrong unblocking code, {exc.tries_remaining} tries left") from exc
        except PinBlockedError as exc:
            raise UnblockRefusedError(exc.sw, "the unblocking code is blocked after too many wrong tries: the "
                                      "PIN cannot be reset any more (restore backed-up values to a new card)") from exc

    def log_out(self) -> None:
        """Make the card forget the verified PIN, so no program after us can use it."""
        self._send(w.log_out())
        self.pin_verified = False

    def release(self) -> None:
        """End of an operation: if we verified the PIN, the card forgets it (best effort: a card
        that no longer answers has forgotten it anyway)."""
        if self.pin_verified:
            try:
                self.log_out()
            except (ApduError, TransportError):
                pass

    # --- values ------------------------------------------------------------------------------

    def list(self, flt: w.ListFilter | None = None) -> list[w.ListEntry]:
        return w.parse_listing(self._send(w.list_values(flt or w.ListFilter(), ne=EXTENDED_MAX_NE)))

    def memory_map(self) -> w.MemoryMap:
        return w.MemoryMap.from_bytes(self._send(w.get_memory_map(ne=EXTENDED_MAX_NE)))

    def read(self, value_id: int) -> ValueRecord:
        return ValueRecord.from_bytes(self._send(w.read_value(value_id, ne=EXTENDED_MAX_NE)))

    def store(self, record: ValueRecord) -> int:
        return w.parse_u16(self._send(w.store_value(record.body())))

    def _modify(self, value_id: int, op: w.ModifyOp, amount: int, what: str) -> int:
        try:
            return w.parse_remaining(self._send(w.modify_value(value_id, w.ModifyRequest(op, amount))))
        except ApduError as exc:
            if exc.sw == SW.CONDITIONS_NOT_SATISFIED:
                raise ValueRefusedError(exc.sw, f"value {value_id} has no {what} for {amount}") from exc
            raise

    def spend(self, value_id: int, amount: int) -> int:
        """Take ``amount`` from a prepaid balance; answers the balance left."""
        return self._modify(value_id, w.ModifyOp.SPEND, amount, "balance left")

    def use(self, value_id: int, count: int = 1) -> int:
        """Use ``count`` tickets or coupons; answers how many are left."""
        return self._modify(value_id, w.ModifyOp.USE, count, "tickets or uses left")

    def delete(self, value_id: int) -> None:
        self._send(w.delete_value(value_id))

    # --- identity and the backup swap (apdu.backup) ------------------------------------------

    def identity(self) -> b.Identity:
        """Asked once per session: the card made its id and identity key at manufacture and never
        changes them, and a backup checks every certificate against them."""
        if self._identity is None:
            self._identity = b.Identity.from_bytes(self._send(b.get_identity()))
        return self._identity

    def put_vault_key(self, public_key: bytes) -> None:
        self._send(b.put_vault_key(public_key))

    def authenticate(self, audience: b.Audience, challenge: bytes) -> bytes:
        """The card's signature over a server's challenge, for the key it pinned for that kind of
        server (see :func:`apdu.backup.auth_message`)."""
        return self._send(b.internal_authenticate(audience, challenge))

    def attestation(self) -> b.Attestation:
        """The issuer's attestation of the card's identity key (servers refuse a card without)."""
        return b.Attestation.from_bytes(self._send(b.get_attestation()))

    def put_attestation(self, attestation: b.Attestation) -> None:
        self._send(b.put_attestation(attestation))

    def begin_backup(self, value_id: int) -> bytes:
        """Mark the value pending and answer its stored bytes, the ones the vault will hash."""
        return self._send(b.begin_backup(value_id))

    def begin_encrypted_backup(self, value_id: int, fields: tuple[DigestField, ...]) -> bytes:
        """Mark the value pending and answer its registered value (E2): the vault sees no plaintext."""
        return self._send(b.begin_encrypted_backup(value_id, bytes(f.value for f in fields)))

    def commit_backup(self, value_id: int, certificate: bytes, keep: bool = False) -> None:
        option = b.BackupOption.KEEP_VALUE if keep else b.BackupOption.NONE
        self._send(b.commit_backup(value_id, certificate, option))

    def cancel_pending(self, value_id: int) -> None:
        self._send(b.cancel_pending(value_id))

    def begin_restore(self, value_id: int) -> bytes:
        """Mark the certificate pending and answer it."""
        return self._send(b.begin_restore(value_id))

    def commit_restore(self, value_id: int, value: bytes) -> None:
        self._send(b.commit_restore(value_id, value))

    def sign_receipt(self, counter: int, value_hash: bytes) -> bytes:
        """A :class:`apdu.backup.Receipt`'s bytes, as the vault takes them."""
        return self._send(b.sign_receipt(counter, value_hash))

    def commit_assisted_restore(self, value_id: int, sealed: bytes) -> None:
        """Seed E6: the value as the key manager sealed it to this card's transport key."""
        self._send(b.commit_assisted_restore(value_id, sealed))

    def import_counter(self) -> int:
        """The sequence number the next handover must carry."""
        return int.from_bytes(self._send(b.get_import_counter()), "big")

    def import_certificate(self, handover: b.Handover) -> int:
        """Store a handed-over certificate; answers its new value id."""
        return w.parse_u16(self._send(b.import_certificate(handover)))

    # --- the backup-trigger manager (apdu.triggers) ------------------------------------------

    def triggers(self) -> t.TriggerSettings:
        return t.TriggerSettings.from_bytes(self._send(t.get_triggers()))

    def put_triggers(self, settings: t.TriggerSettings) -> None:
        self._send(t.put_triggers(settings))

    def select_for_backup(self, today: date) -> tuple[t.Candidate, ...]:
        """The live values the card's conditions select on ``today`` (fig. 40)."""
        return tuple(t.Candidate.parse_list(self._send(t.select_for_backup(today))))

    def record_run(self, today: date) -> None:
        self._send(t.record_run(today))

    # --- the key store (apdu.keys) -----------------------------------------------------------

    def generate_key(self, mode: k.KeyMode | None = None) -> k.KeyInfo:
        """``mode`` PUBLIC when not given (a default read at the call: apdu.keys is deferred)."""
        return k.KeyInfo.from_bytes(self._send(k.generate_key(k.KeyMode.PUBLIC if mode is None else mode)))

    def key_info(self, next_key: bool = False) -> k.KeyInfo:
        """The card's key, or the next one of a rotation under way (mode NONE if none)."""
        return k.KeyInfo.from_bytes(self._send(k.get_key_info(next_key)))

    def put_keymgr_key(self, public_key: bytes) -> None:
        self._send(k.put_keymgr_key(public_key))

    def export_key(self, next_key: bool = False, part: bool = False) -> bytes:
        """The card's key material (d || Q, or K; a rotation's next one with ``next_key``), or
        with ``part`` only the key manager's part 405 of it (E4), sealed to the pinned key
        manager: opaque to this terminal."""
        return self._send(k.export_key(next_key, part))

    # --- key rotation (apdu.rotation) --------------------------------------------------------

    def begin_rotation(self) -> k.KeyInfo:
        return k.KeyInfo.from_bytes(self._send(r.begin_rotation()))

    def reencrypt(self, value_id: int, registered_value: bytes) -> bytes:
        return self._send(r.reencrypt(value_id, registered_value))

    def swap_certificate(self, value_id: int, certificate: bytes, registered_value: bytes) -> None:
        self._send(r.swap_certificate(value_id, certificate, registered_value))

    def commit_rotation(self) -> k.KeyInfo:
        return k.KeyInfo.from_bytes(self._send(r.commit_rotation()))

    def new_transport_key(self) -> bytes:
        return self._send(k.new_transport_key())

    def replace_key(self, mode: k.KeyMode, sealed: bytes) -> k.KeyInfo:
        """Seed E7: install the key the key manager sealed for this card, in place of its key or none."""
        return k.KeyInfo.from_bytes(self._send(rk.replace_key(mode, sealed)))

    def succeed_certificate(self, value_id: int, certificate: bytes, signature: bytes) -> None:
        """Swap a certificate for the successor the vault signed (re-keying by the key manager)."""
        self._send(rk.succeed_certificate(value_id, rk.Succession(certificate, signature)))

    def import_key(self, mode: k.KeyMode, sealed: bytes) -> k.KeyInfo:
        return k.KeyInfo.from_bytes(self._send(k.import_key(mode, sealed)))

    def split_key(self, k_of: int, n: int) -> k.KeyShares:
        """Shamir shares of the card's d (or K): to the key manager, to the vault, and codes."""
        return k.KeyShares.from_bytes(self._send(k.split_key(k_of, n)))

    def import_share(self, mode: k.KeyMode, key_id: bytes, share: bytes, sealed: bool,
                     public_key: bytes = b"") -> k.KeyInfo:
        """Hand the card one share (with Q for a public key); mode NONE in the answer means it
        needs more."""
        return k.KeyInfo.from_bytes(self._send(k.import_share(mode, key_id, share, sealed, public_key)))
