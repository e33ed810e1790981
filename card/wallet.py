"""The wallet applet (seed E1): stores, lists, reads, modifies and deletes electronic value.

EEPROM layout of the applet area: a 768-byte header (fields, identity keys, backup triggers, key
store), then the index (:mod:`card.index`), then the data area. Every mutating command runs inside one EEPROM transaction, so it lands whole or
not at all; the PIN retry counter is the one deliberate exception, committed *before* the PIN
is compared so that tearing power during a wrong guess still costs a try.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from apdu import SW, CommandApdu, ins, tlv
from apdu import wallet as w
from apdu.records import MAX_RECORD, RecordError, Tag, ValueFlags, ValueRecord, ValueType, decode_bcd_date

from .applet import CardError
from .backup import ATTESTATION_END, H_ATTESTATION, KEY_AREA_END, BackupCommands
from .eeprom import Eeprom
from .index import Index, IndexEntry, NoMemory
from .keys import H_KEY_PUBLIC, H_KEYSTORE, KEY_PUBLIC_END, KeyCommands
from .keys import KEY_AREA_END as KEYSTORE_END
from .pin import Pin
from .rekey import RekeyCommands
from .rotation import RotationCommands
from .triggers import H_TRIGGERS, TRIGGER_AREA_END, TriggerCommands

MAGIC = b"EVBW"
LAYOUT_VERSION = 6  # 5: the issuer's attestation (card.backup); 6: random keys, d and Q stored (card.keys)
HEADER_SIZE = 1024  # fields below, then the areas of card.backup, card.triggers, card.keys, attestation
DEFAULT_INDEX_CAPACITY = 128
PIN_MAX_TRIES = 3
PUK_MAX_TRIES = 10

# header field offsets
H_MAGIC, H_LAYOUT, H_LIFE_CYCLE, H_CARD_ID = 0, 4, 5, 6
H_PIN_TRIES, H_PIN_MAX, H_PIN_HASH, H_NEXT_ID, H_INDEX_CAPACITY = 14, 15, 16, 48, 50
assert KEY_AREA_END <= H_TRIGGERS and TRIGGER_AREA_END <= H_KEYSTORE and KEYSTORE_END <= H_ATTESTATION
# the unblocking code (PUK), after the attestation: tries left, the maximum, SHA-256(salt ‖ digits)
H_PUK_TRIES, H_PUK_MAX, H_PUK_HASH = 912, 913, 914
PUK_AREA_END = H_PUK_HASH + 32
PUK_SALT = b"PUK"  # appended to the card id, so a PUK never hashes like a PIN of the same digits
assert ATTESTATION_END <= H_PUK_TRIES and PUK_AREA_END <= H_KEY_PUBLIC and KEY_PUBLIC_END <= HEADER_SIZE
# what a card in its personalization state answers: its issuer attests it, then the PIN is set
PERSONALIZATION_INS = (w.INS_PERSONALIZE, w.INS_GET_CARD_INFO, ins.INS_GET_IDENTITY, ins.INS_PUT_ATTESTATION,
                       ins.INS_GET_ATTESTATION)
# P1-P2 are checked before anything else (6A86), so a host learns of a malformed command first:
# these commands take none (00 00), these a value id (1..65535)
NO_P1P2 = frozenset({
    w.INS_PERSONALIZE, w.INS_GET_CARD_INFO, w.INS_LIST_VALUES, w.INS_STORE_VALUE, w.INS_GET_MEMORY_MAP,
    ins.INS_GET_IDENTITY,
    ins.INS_PUT_VAULT_KEY, ins.INS_GET_IMPORT_COUNTER, ins.INS_SIGN_RECEIPT, ins.INS_IMPORT_CERTIFICATE,
    ins.INS_PUT_ATTESTATION, ins.INS_GET_ATTESTATION, ins.INS_GET_TRIGGERS, ins.INS_PUT_TRIGGERS,
    ins.INS_SELECT_FOR_BACKUP, ins.INS_RECORD_RUN, ins.INS_PUT_KEYMGR_KEY, ins.INS_NEW_TRANSPORT_KEY,
    ins.INS_BEGIN_ROTATION, ins.INS_COMMIT_ROTATION,
})
# tags a stored record never carries as sent, not even empty or zero: the card assigns and owns them
CARD_OWNED_TAGS = frozenset({Tag.ID, Tag.FLAGS, Tag.CERTIFICATE})
VALUE_ID_P1P2 = frozenset({
    w.INS_READ_VALUE, w.INS_MODIFY_VALUE, w.INS_DELETE_VALUE, ins.INS_BEGIN_BACKUP, ins.INS_COMMIT_BACKUP,
    ins.INS_CANCEL_PENDING, ins.INS_BEGIN_RESTORE, ins.INS_COMMIT_RESTORE, ins.INS_COMMIT_ASSISTED_RESTORE,
    ins.INS_BEGIN_ENCRYPTED_BACKUP, ins.INS_REENCRYPT, ins.INS_SWAP_CERTIFICATE, ins.INS_SUCCEED_CERTIFICATE,
})


class WalletApplet(BackupCommands, TriggerCommands, KeyCommands, RotationCommands, RekeyCommands):
    aid = w.AID_WALLET

    def __init__(self, eeprom: Eeprom) -> None:
        self.eeprom = eeprom
        self.base = eeprom.app_offset
        if eeprom.read(self.base + H_MAGIC, 4) != MAGIC:
            raise ValueError("EEPROM holds no wallet: format it first")
        layout = eeprom.read(self.base + H_LAYOUT, 1)[0]
        if layout != LAYOUT_VERSION:
            raise ValueError(f"the wallet has layout {layout}; this card software reads layout {LAYOUT_VERSION}")
        capacity = eeprom.read_u16(self.base + H_INDEX_CAPACITY)
        self.index = Index(eeprom, self.base + HEADER_SIZE, capacity)
        self.pin = Pin(eeprom, self.base + H_PIN_TRIES, self.base + H_PIN_MAX, self.base + H_PIN_HASH, self.card_id)
        self.puk = Pin(eeprom, self.base + H_PUK_TRIES, self.base + H_PUK_MAX, self.base + H_PUK_HASH,
                       self.card_id + PUK_SALT, parse=w.parse_puk_block)
        self.pin_verified = False
        self._handlers = {
            (w.CLA_PROPRIETARY, w.INS_PERSONALIZE): self._personalize,
            (w.CLA_PROPRIETARY, w.INS_GET_CARD_INFO): self._card_info,
            (w.CLA_PROPRIETARY, w.INS_LIST_VALUES): self._list,
            (w.CLA_PROPRIETARY, w.INS_READ_VALUE): self._read,
            (w.CLA_PROPRIETARY, w.INS_STORE_VALUE): self._store,
            (w.CLA_PROPRIETARY, w.INS_MODIFY_VALUE): self._modify,
            (w.CLA_PROPRIETARY, w.INS_DELETE_VALUE): self._delete,
            (w.CLA_PROPRIETARY, w.INS_GET_MEMORY_MAP): self._memory_map,
            (w.CLA_ISO, w.INS_VERIFY): self._verify,
            (w.CLA_ISO, w.INS_CHANGE_REFERENCE_DATA): self._change_pin,
            (w.CLA_ISO, w.INS_RESET_RETRY_COUNTER): self._reset_retry_counter,
            **self.backup_handlers(),
            **self.trigger_handlers(),
            **self.key_handlers(),
            **self.rotation_handlers(),
            **self.rekey_handlers(),
        }

    @staticmethod
    def format(eeprom: Eeprom, index_capacity: int = DEFAULT_INDEX_CAPACITY) -> None:
        """Manufacture: lay out an empty wallet with a fresh card id, awaiting personalization."""
        base = eeprom.app_offset
        header = bytearray(HEADER_SIZE)
        header[H_MAGIC : H_MAGIC + 4] = MAGIC
        header[H_LAYOUT] = LAYOUT_VERSION
        header[H_LIFE_CYCLE] = w.LifeCycle.PERSONALIZATION
        header[H_CARD_ID : H_CARD_ID + 8] = os.urandom(8)
        header[H_PIN_MAX] = PIN_MAX_TRIES
        header[H_PUK_MAX] = PUK_MAX_TRIES
        header[H_NEXT_ID : H_NEXT_ID + 2] = (1).to_bytes(2, "big")
        header[H_INDEX_CAPACITY : H_INDEX_CAPACITY + 2] = index_capacity.to_bytes(2, "big")
        BackupCommands.format_keys(header)
        TriggerCommands.format_triggers(header)
        Index(eeprom, base + HEADER_SIZE, index_capacity)  # refuses a geometry with no data area
        with eeprom.transaction():
            eeprom.write(base, bytes(header))

    # --- header fields -----------------------------------------------------------------------

    def _byte(self, off: int) -> int:
        return self.eeprom.read(self.base + off, 1)[0]

    @property
    def life_cycle(self) -> w.LifeCycle:
        return w.LifeCycle(self._byte(H_LIFE_CYCLE))

    @property
    def card_id(self) -> bytes:
        return self.eeprom.read(self.base + H_CARD_ID, 8)

    # --- applet protocol ---------------------------------------------------------------------

    def select(self) -> bytes:
        self.pin_verified = False
        return bytes(tlv.Tlv(0x6F, bytes(tlv.Tlv(0x84, self.aid))))  # FCI with the DF name

    def deselect(self) -> None:
        self.pin_verified = False

    def process(self, command: CommandApdu) -> bytes:
        cla = command.cla & ~0x10 & 0xFF
        handler = self._handlers.get((cla, command.ins))
        if handler is None:
            known_ins = {ins for (_, ins) in self._handlers}
            raise CardError(SW.CLA_NOT_SUPPORTED if command.ins in known_ins else SW.INS_NOT_SUPPORTED)
        p1p2 = command.p1 << 8 | command.p2
        if (command.ins in NO_P1P2 and p1p2) or (command.ins in VALUE_ID_P1P2 and not p1p2):
            raise CardError(SW.INCORRECT_P1P2)
        personalizing = self.life_cycle == w.LifeCycle.PERSONALIZATION
        if personalizing and command.ins not in PERSONALIZATION_INS:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        if not personalizing and command.ins in (w.INS_PERSONALIZE, ins.INS_PUT_ATTESTATION):
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        try:
            return handler(command)
        except (w.MessageError, RecordError, tlv.TlvError) as exc:
            raise CardError(SW.WRONG_DATA) from exc
        except NoMemory as exc:
            raise CardError(SW.NOT_ENOUGH_MEMORY) from exc

    def _require_pin(self) -> None:
        if self._byte(H_PIN_TRIES) == 0:
            raise CardError(SW.AUTH_METHOD_BLOCKED)
        if not self.pin_verified:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED)

    @staticmethod
    def _no_data(command: CommandApdu) -> None:
        if command.data:
            raise CardError(SW.WRONG_LENGTH)

    def _entry(self, command: CommandApdu) -> IndexEntry:
        value_id = command.p1 << 8 | command.p2
        entry = self.index.find(value_id) if value_id else None
        if entry is None:
            raise CardError(SW.RECORD_NOT_FOUND)
        return entry

    # --- PIN ---------------------------------------------------------------------------------

    def _personalize(self, command: CommandApdu) -> bytes:
        """The PIN block and the unblocking code, in one transaction with the life cycle. The
        one-block form of earlier layouts is refused (6700): a card never leaves personalization
        without a way back from a blocked PIN."""
        if len(command.data) != w.PIN_BLOCK_LEN + w.PUK_LEN:
            raise CardError(SW.WRONG_LENGTH)
        digits = w.parse_pin_block(command.data[: w.PIN_BLOCK_LEN])
        puk = w.parse_puk_block(command.data[w.PIN_BLOCK_LEN :])
        with self.eeprom.transaction():
            self.pin.set(digits)
            self.puk.set(puk)
            self.eeprom.write(self.base + H_LIFE_CYCLE, bytes((w.LifeCycle.OPERATIONAL,)))
        return b""

    def _verify(self, command: CommandApdu) -> bytes:
        try:
            self.pin_verified = self.pin.verify(command, self.pin_verified)
        except CardError:
            self.pin_verified = False
            raise
        return b""

    def _change_pin(self, command: CommandApdu) -> bytes:
        if command.p1 != 0 or command.p2 != w.P2_PIN:
            raise CardError(SW.REFERENCE_DATA_NOT_FOUND if command.p1 == 0 else SW.INCORRECT_P1P2)
        if len(command.data) != 2 * w.PIN_BLOCK_LEN:
            raise CardError(SW.WRONG_LENGTH)
        new_digits = w.parse_pin_block(command.data[w.PIN_BLOCK_LEN :])
        try:
            self.pin.check(command.data[: w.PIN_BLOCK_LEN])
        except CardError:
            self.pin_verified = False
            raise
        with self.eeprom.transaction():
            self.pin.set(new_digits, reset_tries=False)
        self.pin_verified = True
        return b""

    def _reset_retry_counter(self, command: CommandApdu) -> bytes:
        """ISO 7816-4 RESET RETRY COUNTER, P1 00: the unblocking code and a new PIN. The code has
        its own counter, spent before the comparison like the PIN's; a right code sets the new
        PIN and both counters back to their maximum in one transaction. The PIN is not verified
        by it: the holder verifies the new PIN next."""
        if command.p1 != 0 or command.p2 != w.P2_PIN:
            raise CardError(SW.REFERENCE_DATA_NOT_FOUND if command.p1 == 0 else SW.INCORRECT_P1P2)
        if len(command.data) != w.PUK_LEN + w.PIN_BLOCK_LEN:
            raise CardError(SW.WRONG_LENGTH)
        new_digits = w.parse_pin_block(command.data[w.PUK_LEN :])
        w.parse_puk_block(command.data[: w.PUK_LEN])  # malformed: 6A80 before a try is spent
        self.pin_verified = False
        self.puk.check(command.data[: w.PUK_LEN])
        with self.eeprom.transaction():
            self.pin.set(new_digits)
        return b""

    # --- information and listing -------------------------------------------------------------

    def _card_info(self, command: CommandApdu) -> bytes:
        self._no_data(command)
        entries = self.index.entries()
        certs = sum(1 for e in entries if e.flags & ValueFlags.CERTIFICATE.value)  # an int: IntFlag's & is slow
        return bytes(
            w.CardInfo(
                version=w.VERSION,
                life_cycle=self.life_cycle,
                card_id=self.card_id,
                total_memory=self.index.data_size,
                free_memory=self.index.data_size - sum(e.size for e in entries),
                index_capacity=self.index.capacity,
                index_used=len(entries),
                value_count=len(entries) - certs,
                certificate_count=certs,
                pin_tries_remaining=self._byte(H_PIN_TRIES),
                pin_max_tries=self._byte(H_PIN_MAX),
            )
        )

    def _memory_map(self, command: CommandApdu) -> bytes:
        """The geometry and every occupied index entry as stored (slot order), read-only and
        without the PIN: it tells sizes, types and places, which LIST VALUES tells already."""
        self._no_data(command)
        e = self.eeprom
        areas = (
            w.MapArea(w.AreaKind.MEMORY_HEADER, 0, e.journal_offset),
            w.MapArea(w.AreaKind.JOURNAL, e.journal_offset, e.journal_size),
            w.MapArea(w.AreaKind.APPLET_HEADER, self.base, HEADER_SIZE),
            w.MapArea(w.AreaKind.INDEX, self.index.base, self.index.data_start - self.index.base),
            w.MapArea(w.AreaKind.DATA, self.index.data_start, self.index.data_size),
        )
        entries = sorted(self.index.entries(), key=lambda x: x.slot)
        return bytes(w.MemoryMap(e.size, areas, tuple(
            w.MapEntry(x.slot, x.id, ValueType(x.type), ValueFlags(x.flags), x.offset, x.size) for x in entries
        )))

    def _title(self, entry: IndexEntry) -> tuple[bytes, bytes]:
        """The record's name (UTF-8) and valid-to date (BCD, or none), as stored: one pass over
        its fields, nothing decoded that the listing sends on as it is."""
        body = self.index.read(entry)
        found = tlv.locate_first(body, (Tag.NAME, Tag.VALID_TO))
        name, to = found.get(Tag.NAME), found.get(Tag.VALID_TO)
        return (body[name[0]: name[0] + name[1]] if name else b"",
                body[to[0]: to[0] + to[1]] if to else w.NO_DATE)

    def _list(self, command: CommandApdu) -> bytes:
        if command.p1 or command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        flt = w.ListFilter.from_bytes(command.data)
        out = bytearray()
        for e in self.index.entries():
            if flt.type is not None and e.type != flt.type:
                continue
            if flt.certificates_only and not e.flags & ValueFlags.CERTIFICATE.value:
                continue
            name, valid_to = self._title(e)
            if flt.today is not None and flt.expiring_within is not None:
                if valid_to == w.NO_DATE:
                    continue
                days_left = decode_bcd_date(valid_to).toordinal() - flt.today.toordinal()
                if not 0 <= days_left <= flt.expiring_within:
                    continue
            out += w.list_entry(e.id, e.type, e.flags, e.size, valid_to, name)
        return bytes(out)

    def _read(self, command: CommandApdu) -> bytes:
        self._no_data(command)
        entry = self._entry(command)
        head = tlv.encode([(Tag.ID, entry.id.to_bytes(2, "big")), (Tag.FLAGS, bytes((entry.flags,)))])
        return head + self.index.read(entry)

    # --- mutation ----------------------------------------------------------------------------

    def _store(self, command: CommandApdu) -> bytes:
        self._require_pin()
        if command.p1 or command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        record = ValueRecord.from_bytes(command.data)
        if CARD_OWNED_TAGS & tlv.decode_map(command.data).keys():
            raise CardError(SW.WRONG_DATA)  # the card assigns ids, owns flags, takes certificates only from the vault
        return w.encode_u16(self._add(record.body(), record.type, ValueFlags.NONE))

    def _add(self, body: bytes, type_: int, flags: int, also: Callable[[], None] = lambda: None) -> int:
        """A new entry, with ``also``'s writes in the same transaction; answers its id."""
        if len(body) > MAX_RECORD:
            raise CardError(SW.WRONG_LENGTH)
        value_id = self.eeprom.read_u16(self.base + H_NEXT_ID)
        if value_id == 0:  # 65535 values stored over the card's life: ids are spent
            raise CardError(SW.NOT_ENOUGH_MEMORY)
        offset = self.index.reserve(len(body))
        with self.eeprom.transaction():
            self.index.add(value_id, type_, flags, offset, body)
            self.eeprom.write_u16(self.base + H_NEXT_ID, (value_id + 1) & 0xFFFF)
            also()
        return value_id

    def _modify(self, command: CommandApdu) -> bytes:
        self._require_pin()
        entry = self._entry(command)
        if entry.flags & (ValueFlags.CERTIFICATE | ValueFlags.PENDING):
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)  # only live value can be spent
        request = w.ModifyRequest.from_bytes(command.data)
        body = self.index.read(entry)
        tag = Tag.BALANCE if request.op == w.ModifyOp.SPEND else Tag.QUANTITY
        at = tlv.locate(body, tag)
        if at is None or at[1] != 4:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        current = int.from_bytes(body[at[0] : at[0] + 4], "big")
        if request.amount > current:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        remaining = current - request.amount
        with self.eeprom.transaction():
            self.index.write_at(entry, at[0], remaining.to_bytes(4, "big"))
            if entry.flags & ValueFlags.BACKED_UP:  # the vault's copy no longer matches
                self.index.set_flags(entry, entry.flags & ~ValueFlags.BACKED_UP)
        return w.encode_remaining(remaining)

    def _delete(self, command: CommandApdu) -> bytes:
        self._require_pin()
        self._no_data(command)
        entry = self._entry(command)
        if entry.flags & ValueFlags.PENDING:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)  # finish or cancel the swap first
        with self.eeprom.transaction():
            self.index.remove(entry)
        return b""

    def _replace(self, entry: IndexEntry, body: bytes, type_: int, flags: int) -> None:
        """Swap a record's content in one transaction, in place when it fits."""
        if len(body) > MAX_RECORD:
            raise CardError(SW.WRONG_LENGTH)
        offset = entry.offset
        if len(body) > entry.size:
            offset = self.index.reserve(len(body))  # beside the old record: 6A84 if no room
            entry = self.index.find(entry.id) or entry  # compaction may have moved it
        with self.eeprom.transaction():
            self.index.rewrite(entry, offset, body, type_, flags)
