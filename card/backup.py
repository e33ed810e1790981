"""The card's half of backup and restore (seed E1 steps 1-3/1-4 and 2-3/2-4), the card's
identity key and the vault's trust anchor.

Mixed into the wallet applet, whose index and transactions it uses. Every swap is one EEPROM
transaction, so a value and its certificate are never both live, nor both gone: see
:mod:`apdu.backup` for the protocol and ARCHITECTURE section 4 for the invariant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from apdu import SW, CommandApdu, ins, tlv
from apdu import seal as sl
from apdu.deferred import deferred
from apdu.records import MAX_RECORD, RecordError, Tag, ValueFlags, ValueRecord, ValueType
from apdu.wallet import MessageError, encode_u16

from . import crypto
from .applet import CardError, WalletPart
from .index import IndexEntry

if TYPE_CHECKING:
    from apdu import backup as b
    from apdu import certificate as c
    from apdu import keys as k
else:  # run at the first command of backup or restore: a card boots and reads its values without them
    b, c, k = map(deferred, ("apdu.backup", "apdu.certificate", "apdu.keys"))

# key area of the wallet header (see card.wallet for the rest of the layout)
H_IDENTITY_KEY = 64  # private scalar, 32 bytes
H_IDENTITY_PUB = 96  # uncompressed point, 65 bytes
H_VAULT_KEY = 161  # the vault's public key, 65 bytes; all zero until installed
H_IMPORTED = 226  # handovers imported, 4 bytes: the sequence number the next one must carry
KEY_AREA_END = 230
# attestation area, after the key store: signature length (1), issuer key (65), signature (<= 72)
H_ATTESTATION = 768
ATTESTATION_END = H_ATTESTATION + 1 + 65 + ins.MAX_SIGNATURE
# the longest sealed value COMMIT ASSISTED RESTORE opens: a record's worth of padded ciphertext
MAX_ASSISTED = sl.SALT_LEN + sl.IV_LEN + MAX_RECORD + sl.BLOCK + sl.TAG_LEN

# SIGN RECEIPT's scan as plain ints (an IntFlag's & costs a call per entry): the entries that may
# still need a registration, and of those the certificates
_CERTIFICATE = int(ValueFlags.CERTIFICATE)
_HOLDING = int(ValueFlags.CERTIFICATE | ValueFlags.PENDING | ValueFlags.BACKED_UP)


class BackupCommands(WalletPart):
    if TYPE_CHECKING:  # provided by the wallet applet and its other mixins
        @property
        def keymgr_key(self) -> bytes | None: ...

        def _no_data(self, command: CommandApdu) -> None: ...
        def _add(self, body: bytes, type_: int, flags: int, also: Callable[[], None] = ...) -> int: ...
        @property
        def key_mode(self) -> k.KeyMode: ...
        def key_info(self) -> k.KeyInfo: ...
        def seal_value(self, value: bytes, card_id: bytes) -> bytes: ...
        def open_assisted(self, blob: bytes, context: bytes) -> bytes: ...
        @property
        def next_mode(self) -> k.KeyMode: ...
        def key_material(self, next_key: bool) -> tuple[bytes, k.KeyMode]: ...
        @staticmethod
        def vault_part(material: bytes, mode: k.KeyMode, card_id: bytes, vault: bytes) -> bytes: ...

    @staticmethod
    def format_keys(header: bytearray) -> None:
        """Manufacture: the identity key pair is generated here, on the card."""
        scalar, public = crypto.generate()
        header[H_IDENTITY_KEY : H_IDENTITY_KEY + 32] = scalar
        header[H_IDENTITY_PUB : H_IDENTITY_PUB + 65] = public

    def backup_handlers(self) -> dict[tuple[int, int], Callable[[CommandApdu], bytes]]:
        p = 0x80
        return {
            (p, ins.INS_GET_IDENTITY): self._get_identity,
            (p, ins.INS_PUT_VAULT_KEY): self._put_vault_key,
            (p, ins.INS_PUT_ATTESTATION): self._put_attestation,
            (p, ins.INS_GET_ATTESTATION): self._get_attestation,
            (0x00, ins.INS_INTERNAL_AUTHENTICATE): self._authenticate,
            (p, ins.INS_BEGIN_BACKUP): self._begin_backup,
            (p, ins.INS_BEGIN_ENCRYPTED_BACKUP): self._begin_encrypted_backup,
            (p, ins.INS_COMMIT_BACKUP): self._commit_backup,
            (p, ins.INS_CANCEL_PENDING): self._cancel_pending,
            (p, ins.INS_BEGIN_RESTORE): self._begin_restore,
            (p, ins.INS_COMMIT_RESTORE): self._commit_restore,
            (p, ins.INS_SIGN_RECEIPT): self._sign_receipt,
            (p, ins.INS_GET_IMPORT_COUNTER): self._get_import_counter,
            (p, ins.INS_IMPORT_CERTIFICATE): self._import_certificate,
            (p, ins.INS_COMMIT_ASSISTED_RESTORE): self._commit_assisted_restore,
        }

    # --- keys --------------------------------------------------------------------------------

    def _header_bytes(self, off: int, n: int) -> bytes:
        return self.eeprom.read(self.base + off, n)

    def _sign(self, message: bytes) -> bytes:
        return crypto.sign(self._header_bytes(H_IDENTITY_KEY, 32), message)

    @property
    def vault_key(self) -> bytes | None:
        key = self._header_bytes(H_VAULT_KEY, 65)
        return key if key[0] == 0x04 else None

    @property
    def identity(self) -> b.Identity:
        return b.Identity(self.card_id, self._header_bytes(H_IDENTITY_PUB, 65))

    def _get_identity(self, command: CommandApdu) -> bytes:
        self._no_data(command)
        return bytes(self.identity)

    def _put_attestation(self, command: CommandApdu) -> bytes:
        """The issuer's signature over this card's identity, written once at personalization
        (the wallet allows it only then). Checked here so that a card never carries an
        attestation of another card's key."""
        if command.p1 or command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        try:
            attestation = b.Attestation.from_bytes(command.data)
        except MessageError as exc:
            raise CardError(SW.WRONG_DATA) from exc
        if self._header_bytes(H_ATTESTATION, 1)[0]:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)  # attested once, for the card's life
        if not crypto.verify(attestation.issuer_key, attestation.signature, b.Attestation.message(self.identity)):
            raise CardError(SW.VERIFICATION_FAILED)
        with self.eeprom.transaction():
            self.eeprom.write(self.base + H_ATTESTATION, bytes((len(attestation.signature),)) + bytes(attestation))
        return b""

    def _get_attestation(self, command: CommandApdu) -> bytes:
        self._no_data(command)
        n = self._header_bytes(H_ATTESTATION, 1)[0]
        if not n:
            raise CardError(SW.REFERENCE_DATA_NOT_FOUND)  # a card no issuer vouched for
        return self._header_bytes(H_ATTESTATION + 1, 65 + n)

    def _put_vault_key(self, command: CommandApdu) -> bytes:
        self._require_pin()
        if not crypto.valid_public_key(command.data):
            raise CardError(SW.WRONG_DATA)
        current = self.vault_key
        if current == command.data:
            return b""
        if current is not None and any(e.flags for e in self.index.entries()):
            # certificates signed by the old vault would become unverifiable: refuse
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        with self.eeprom.transaction():
            self.eeprom.write(self.base + H_VAULT_KEY, command.data)
        return b""

    def _authenticate(self, command: CommandApdu) -> bytes:
        """Sign a server's challenge for the key the card pinned for that kind of server: the
        host names the kind (P1), never the key."""
        self._require_pin()
        try:
            audience = b.Audience(command.p1)
        except ValueError as exc:
            raise CardError(SW.INCORRECT_P1P2) from exc
        if command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        if not b.CHALLENGE_MIN <= len(command.data) <= b.CHALLENGE_MAX:
            raise CardError(SW.WRONG_LENGTH)
        server = self.vault_key if audience == b.Audience.VAULT else self.keymgr_key
        if server is None:
            raise CardError(SW.REFERENCE_DATA_NOT_USABLE)  # pin the server's key first
        return self._sign(b.auth_message(audience, server, self.card_id, command.data))

    # --- backup ------------------------------------------------------------------------------

    def _begin_backup(self, command: CommandApdu) -> bytes:
        self._require_pin()
        self._no_data(command)
        entry = self._entry(command)
        if entry.flags & ValueFlags.CERTIFICATE:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        if not entry.flags & ValueFlags.PENDING:
            with self.eeprom.transaction():
                self.index.set_flags(entry, entry.flags | ValueFlags.PENDING)
        return self.index.read(entry)

    def _begin_encrypted_backup(self, command: CommandApdu) -> bytes:
        """Seed E2 steps 1-1..1-2: like BEGIN BACKUP, but answers the registered value 203:
        the digest of the vault's fields, the value sealed to 401, and the card's signature."""
        self._require_pin()
        if self.key_mode == k.KeyMode.NONE or self.next_mode != k.KeyMode.NONE:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)  # no key, or a rotation under way
        try:
            fields = [c.DigestField(t) for t in command.data]
        except ValueError as exc:
            raise CardError(SW.WRONG_DATA) from exc
        entry = self._entry(command)
        if entry.flags & ValueFlags.CERTIFICATE:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        vault = self.vault_key
        if vault is None:
            raise CardError(SW.REFERENCE_DATA_NOT_USABLE)  # the audience of the signature
        value = self.index.read(entry)
        if not entry.flags & ValueFlags.PENDING:
            with self.eeprom.transaction():
                self.index.set_flags(entry, entry.flags | ValueFlags.PENDING)
        material, mode = self.key_material(next_key=False)
        registered = b.RegisteredValue(c.make_digest(value, fields), self.key_info().key_id,
                                       self.seal_value(value, self.card_id),
                                       key_part=self.vault_part(material, mode, self.card_id, vault))
        return replace(registered, signature=self._sign(registered.signed_part(self.card_id, vault))).to_bytes()

    def _commit_backup(self, command: CommandApdu) -> bytes:
        self._require_pin()
        if not command.data:
            raise CardError(SW.WRONG_LENGTH)
        if command.data[0] not in (b.BackupOption.NONE, b.BackupOption.KEEP_VALUE):
            raise CardError(SW.WRONG_DATA)  # (not "& ~KEEP_VALUE": an IntFlag's ~ keeps only known bits)
        option = b.BackupOption(command.data[0])
        raw = command.data[1:]
        cert = self._parse_certificate(raw)
        entry = self._entry(command)
        if entry.flags & ValueFlags.CERTIFICATE:  # a retry after the swap: done already
            if self._certificate_of(entry) == raw:
                return b""
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        value = self.index.read(entry)
        keep = bool(option & b.BackupOption.KEEP_VALUE)
        if keep and entry.flags & ValueFlags.BACKED_UP and not entry.flags & ValueFlags.PENDING:
            self._check_certificate(cert, value)  # a retry of a keeping commit: done already
            return b""
        if not entry.flags & ValueFlags.PENDING:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        self._check_certificate(cert, value)
        if keep:
            with self.eeprom.transaction():
                self.index.set_flags(entry, (entry.flags & ~ValueFlags.PENDING) | ValueFlags.BACKED_UP)
            return b""
        record = ValueRecord.from_bytes(value)
        self._replace(entry, b.certificate_record(record, raw).body(), entry.type, ValueFlags.CERTIFICATE)
        return b""

    def _parse_certificate(self, raw: bytes) -> c.Certificate:
        try:
            return c.Certificate.from_bytes(raw)
        except c.CertificateError as exc:
            raise CardError(SW.WRONG_DATA) from exc

    def _check_certificate(self, cert: c.Certificate, value: bytes) -> None:
        """Seed step 1-4: digest and X must fit the value, and the vault must have signed."""
        vault = self.vault_key
        if vault is None:
            raise CardError(SW.REFERENCE_DATA_NOT_USABLE)
        if cert.card_id != self.card_id or not c.digest_matches(cert.digest, value):
            raise CardError(SW.WRONG_DATA)
        if cert.value_hash != self._backed_up_hash(value, cert.mode):
            raise CardError(SW.WRONG_DATA)
        if not crypto.verify(vault, cert.signature, cert.message()):
            raise CardError(SW.VERIFICATION_FAILED)

    def _backed_up_hash(self, value: bytes, mode: c.Mode) -> bytes | None:
        """X as the vault computes it: of the value (E1), or of its ciphertext (E2)."""
        if mode == c.Mode.PLAIN:
            return c.value_hash(value)
        if self.key_mode == k.KeyMode.NONE:
            return None
        return c.value_hash(self.seal_value(value, self.card_id))

    def _certificate_of(self, entry: IndexEntry) -> bytes:
        return ValueRecord.from_bytes(self.index.read(entry)).certificate

    def _cancel_pending(self, command: CommandApdu) -> bytes:
        self._require_pin()
        self._no_data(command)
        entry = self._entry(command)
        if entry.flags & ValueFlags.PENDING:
            with self.eeprom.transaction():
                self.index.set_flags(entry, entry.flags & ~ValueFlags.PENDING)
        return b""

    # --- restore -----------------------------------------------------------------------------

    def _begin_restore(self, command: CommandApdu) -> bytes:
        self._require_pin()
        self._no_data(command)
        entry = self._entry(command)
        if not entry.flags & ValueFlags.CERTIFICATE:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        if not entry.flags & ValueFlags.PENDING:
            with self.eeprom.transaction():
                self.index.set_flags(entry, entry.flags | ValueFlags.PENDING)
        return self._certificate_of(entry)

    def _commit_restore(self, command: CommandApdu) -> bytes:
        self._require_pin()
        value = command.data
        if not value or len(value) > MAX_RECORD:
            raise CardError(SW.WRONG_LENGTH)
        entry = self._entry(command)
        if not entry.flags & ValueFlags.CERTIFICATE:  # a retry after the swap: done already
            if entry.flags == ValueFlags.NONE and self.index.read(entry) == value:
                return b""
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        cert = self._parse_certificate(self._certificate_of(entry))  # ours, or a verified handover's
        if cert.mode == c.Mode.ENCRYPTED:  # E2 step 2-4: check X, then open with 402
            value = self._open_registered(value, cert)
        self._finish_restore(entry, cert, value)
        return b""

    def _commit_assisted_restore(self, command: CommandApdu) -> bytes:
        """Seed E6: the key manager checked the registered value, opened it with the escrowed
        key and sealed the value to this card; the card checks it against the certificate."""
        self._require_pin()
        if not command.data:
            raise CardError(SW.WRONG_LENGTH)
        entry = self._entry(command)
        if not entry.flags & ValueFlags.CERTIFICATE:  # a retry after the swap: done already
            if entry.flags == ValueFlags.NONE:
                return b""
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        raw = self._certificate_of(entry)
        cert = self._parse_certificate(raw)
        if len(command.data) > MAX_ASSISTED:
            raise CardError(SW.WRONG_LENGTH)  # it would open to more than a record: not opened
        value = self.open_assisted(command.data, k.assisted_context(self.card_id, raw))
        if len(value) > MAX_RECORD:
            raise CardError(SW.WRONG_LENGTH)
        self._finish_restore(entry, cert, value)
        return b""

    def _finish_restore(self, entry: IndexEntry, cert: c.Certificate, value: bytes) -> None:
        record = ValueRecord.from_bytes(value)
        if record.certificate or record.body() != value:
            raise CardError(SW.WRONG_DATA)  # only a value in the card's own encoding
        if not c.digest_matches(cert.digest, value) or (
                cert.mode == c.Mode.PLAIN and cert.value_hash != c.value_hash(value)):
            raise CardError(SW.WRONG_DATA)  # seed step 2-4: the value must be the one certified
        self._replace(entry, value, int(record.type), ValueFlags.NONE)

    def _open_registered(self, raw: bytes, cert: c.Certificate) -> bytes:
        try:
            registered = b.RegisteredValue.from_bytes(raw)
        except ValueError as exc:
            raise CardError(SW.WRONG_DATA) from exc
        if c.value_hash(registered.ciphertext) != cert.value_hash or registered.digest != cert.digest:
            raise CardError(SW.WRONG_DATA)
        if self.key_mode == k.KeyMode.NONE:
            raise CardError(SW.REFERENCE_DATA_NOT_USABLE)  # restore the key first
        material, mode = self.key_material(next_key=False)
        if registered.key_id != k.key_info_of(material, mode).key_id and self.next_mode != k.KeyMode.NONE:
            material, mode = self.key_material(next_key=True)  # already moved in a rotation under way
        if registered.key_id != k.key_info_of(material, mode).key_id:
            raise CardError(SW.REFERENCE_DATA_NOT_USABLE)  # another key: restore the key first
        try:
            return k.open_value(material, mode, registered.ciphertext, cert.card_id)
        except sl.SealError as exc:
            raise CardError(SW.WRONG_DATA) from exc

    def _sign_receipt(self, command: CommandApdu) -> bytes:
        """Sign that a registration is no longer needed: the card holds no certificate for it
        and no value whose backup is pending or kept there."""
        self._require_pin()
        try:
            counter, x = b.parse_receipt_request(command.data)
        except ValueError as exc:
            raise CardError(SW.WRONG_LENGTH) from exc
        # a certificate's canonical encoding holds its counter TLV and then its X TLV, so the
        # registration's certificate is on the card iff these 38 bytes are in one of its
        # certificate entries: a byte search, as a Java Card would compare at fixed offsets,
        # instead of parsing every certificate for every receipt (a rotation asks N receipts)
        named = tlv.encode([(c.CertTag.COUNTER, counter.to_bytes(4, "big")), (c.CertTag.VALUE_HASH, x)])
        for flags, record in self.index.flagged(_HOLDING):
            if flags & _CERTIFICATE:
                if named in record:
                    raise CardError(SW.CONDITIONS_NOT_SATISFIED)
            elif x in (c.value_hash(record), self._backed_up_hash(record, c.Mode.ENCRYPTED)):
                raise CardError(SW.CONDITIONS_NOT_SATISFIED)  # pending or kept: plain or encrypted
        vault = self.vault_key
        if vault is None:
            raise CardError(SW.REFERENCE_DATA_NOT_USABLE)
        imported = self._imported()
        return b.Receipt(imported, self._sign(b.receipt_message(vault, self.card_id, counter, x, imported))).to_bytes()

    # --- handovers from a replaced card ------------------------------------------------------

    def _imported(self) -> int:
        return int.from_bytes(self._header_bytes(H_IMPORTED, 4), "big")

    def _get_import_counter(self, command: CommandApdu) -> bytes:
        self._no_data(command)
        return self._header_bytes(H_IMPORTED, 4)

    def _import_certificate(self, command: CommandApdu) -> bytes:
        """Take a certificate of the card this one replaces, as the vault handed it over: the
        sequence number must be the next one, so each handover is taken once."""
        self._require_pin()
        if command.p1 or command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        try:
            handover = b.Handover.from_bytes(command.data)
        except MessageError as exc:
            raise CardError(SW.WRONG_DATA) from exc
        cert = self._parse_certificate(handover.certificate)
        vault = self.vault_key
        if vault is None:
            raise CardError(SW.REFERENCE_DATA_NOT_USABLE)
        if handover.sequence != self._imported():
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)  # taken already, or one is missing
        if cert.card_id == self.card_id:
            raise CardError(SW.WRONG_DATA)  # a card's own certificates come by backup only
        if not (crypto.verify(vault, handover.signature, handover.signed_part(self.identity))
                and crypto.verify(vault, cert.signature, cert.message())):
            raise CardError(SW.VERIFICATION_FAILED)
        title = _title_of(cert)
        next_sequence = (handover.sequence + 1).to_bytes(4, "big")
        value_id = self._add(b.certificate_record(title, handover.certificate).body(), title.type,
                             ValueFlags.CERTIFICATE,
                             lambda: self.eeprom.write(self.base + H_IMPORTED, next_sequence))
        return encode_u16(value_id)


def _title_of(cert: c.Certificate) -> ValueRecord:
    """What an imported certificate is listed by: the fields its digest shows, only those a vault
    may certify (one with others could never restore: digest_matches refuses it)."""
    fields = tlv.decode_map(cert.digest)
    if not fields.keys() <= {int(f.value) for f in c.DigestField}:
        raise CardError(SW.WRONG_DATA)
    fields.setdefault(Tag.TYPE, bytes((ValueType.OTHER,)))
    fields.setdefault(Tag.NAME, f"certificate {cert.counter}".encode())
    try:
        return ValueRecord.from_bytes(tlv.encode(sorted(fields.items())))
    except RecordError as exc:
        raise CardError(SW.WRONG_DATA) from exc
