"""The seed's fig. 15 wallet and the scripted story ``evb demo`` tells with it.

"Today" is 2000-03-15 as in the seed's embodiment 9; the four values are movie ticket A,
concert ticket C (two seats), prepaid card E (1000 yen, 800 left) and movie ticket G (two).
The story is written against a :class:`Reporter` so it stays free of terminal code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Protocol

from apdu import wallet as w
from apdu.records import ValueRecord, ValueType
from apdu.triggers import ShortagePolicy, TriggerSettings, format_condition, parse_condition

from . import factors, keys, triggers
from . import recovery as recovery_flow
from . import rekey as rekey_flow
from . import rotation as rotation_flow
from .backup import backup, connect, restore
from .idcard import IdCardSession
from .keymgr_client import KeyManagerClient, KeyManagerClientError
from .session import WalletSession
from .vault_client import VaultClient, VaultClientError

TODAY = date(2000, 3, 15)
DEMO_PIN = "1234"
ACQUIRED = datetime(2000, 3, 1, 10, 0, 0)

FIG15: tuple[ValueRecord, ...] = (
    ValueRecord(
        ValueType.TICKET,
        "Movie ticket A",
        issuer="Cinema B",
        quantity=1,
        face_value=1600,
        valid_from=date(2000, 4, 1),
        valid_to=date(2000, 5, 31),
        place="B",
        acquired_at=ACQUIRED,
    ),
    ValueRecord(
        ValueType.TICKET,
        "Concert ticket C",
        issuer="Hall D",
        quantity=2,
        face_value=4500,
        valid_from=date(2000, 4, 29),
        valid_to=date(2000, 4, 29),
        place="D",
        acquired_at=ACQUIRED,
    ),
    ValueRecord(
        ValueType.PREPAID,
        "Prepaid card E",
        issuer="Shop F",
        quantity=1,
        face_value=1000,
        balance=800,
        place="F",
        acquired_at=ACQUIRED,
    ),
    ValueRecord(
        ValueType.TICKET,
        "Movie ticket G",
        issuer="Cinema H",
        quantity=2,
        face_value=1600,
        valid_from=date(2000, 5, 1),
        valid_to=date(2000, 6, 30),
        place="H",
        acquired_at=ACQUIRED,
    ),
)


class Reporter(Protocol):
    def step(self, title: str) -> None: ...
    def listing(self, entries: list[w.ListEntry]) -> None: ...
    def record(self, record: ValueRecord) -> None: ...
    def info(self, info: w.CardInfo) -> None: ...
    def note(self, text: str) -> None: ...


@dataclass(frozen=True)
class DemoIds:
    movie_a: int
    concert_c: int
    prepaid_e: int
    movie_g: int


def load_fig15(session: WalletSession) -> DemoIds:
    return DemoIds(*(session.store(r) for r in FIG15))


def run_wallet_story(session: WalletSession, report: Reporter) -> DemoIds:
    report.step("A new card, personalized with PIN 1234")
    session.personalize(DEMO_PIN)
    session.verify_pin(DEMO_PIN)
    report.info(session.info())

    report.step("Storing the four values of the seed's fig. 15")
    ids = load_fig15(session)
    report.listing(session.list())

    report.step("Listing only tickets (the index's type field)")
    report.listing(session.list(w.ListFilter(type=ValueType.TICKET)))

    report.step(f"Values expiring within 60 days of {TODAY.isoformat()}")
    report.listing(session.list(w.ListFilter(today=TODAY, expiring_within=60)))

    report.step("Paying 300 yen with prepaid card E")
    report.note(f"balance left: {session.spend(ids.prepaid_e, 300)} yen")
    report.step("Using one of the two concert tickets C")
    report.note(f"tickets left: {session.use(ids.concert_c, 1)}")
    report.record(session.read(ids.concert_c))

    report.step("Card information after the story")
    report.info(session.info())
    return ids


def run_backup_story(session: WalletSession, vault: VaultClient, ids: DemoIds, report: Reporter) -> None:
    """Seed E1: back values up to the vault against certificates, then restore one."""
    report.step("Authenticating the card to the vault (it signs the vault's challenge)")
    key = connect(session, vault)
    report.note(f"card {session.identity().card_id.hex().upper()} trusts vault key {key[1:9].hex().upper()}…")
    free_before = session.info().free_memory
    report.step("Backing up movie tickets A and G: the card keeps certificates in their place")
    for value_id in (ids.movie_a, ids.movie_g):
        outcome = backup(session, vault, key, value_id)
        report.note(f"{outcome.name}: {outcome.action}")
    report.listing(session.list())
    report.step("Backing up prepaid card E but keeping it on the card (claims 9/33)")
    report.note(f"{backup(session, vault, key, ids.prepaid_e, keep=True).action}")
    report.step("Certificates on the card")
    report.listing(session.list(w.ListFilter(certificates_only=True)))
    report.note(f"the vault holds {len(vault.registrations())} registrations for this card; "
                f"free memory {free_before} -> {session.info().free_memory} bytes")
    report.step("Restoring movie ticket A from its certificate")
    report.note(restore(session, vault, ids.movie_a).action)
    report.record(session.read(ids.movie_a))
    report.note(f"the vault released A's registration on the card's receipt: "
                f"{len(vault.registrations())} registrations left")
    report.listing(session.list())


TICKET_DATA = bytes(400)  # the issuer's signed ticket data a real e-ticket carries


FIG_16B_NOTE = (
    "the seed's fig. 16(b) shows prepaid card E and movie ticket G for this rule; by the rule as para. 0126 "
    "states it (no usable day within a month of 2000-03-15), E, which fig. 15 gives no expiry, is usable "
    "every day and is not selected, while concert ticket C, usable on 2000-04-29 only, has no usable day "
    "by 2000-04-15 and is: fig. 15's data cannot give the figure's E, so the card follows the text (C and G)")


def run_trigger_story(session: WalletSession, link: triggers.VaultLink, report: Reporter) -> None:
    """Seed E9: the card's conditions select values (fig. 16), and a store that does not fit
    backs up automatically, then continues (claim 26)."""
    report.step("A second, small card (8 KiB): fig. 15 with 400 bytes of ticket data each, and coupons")
    session.personalize(DEMO_PIN)
    session.verify_pin(DEMO_PIN)
    for r in FIG15:
        session.store(replace(r, payload=TICKET_DATA))
    while (free := session.info().free_memory) > 300:  # fill it up, leaving about 300 bytes
        coupon = ValueRecord(ValueType.COUPON, f"Coupon {session.info().index_used - len(FIG15) + 1}", issuer="Shop K")
        room = free - 300 - len(coupon.body()) - 3
        session.store(replace(coupon, payload=bytes(min(500, max(room, 0)))))
    report.listing(session.list())
    report.info(session.info())
    for figure, text in (("16(a)", "type=ticket and name~Movie"), ("16(b)", "unusable-within=30")):
        session.put_triggers(TriggerSettings(parse_condition(text), 30, ShortagePolicy.AUTOMATIC))
        chosen = {c.value_id for c in session.select_for_backup(TODAY)}
        report.step(f"The card's condition '{text}' on {TODAY.isoformat()} selects (fig. {figure})")
        report.listing([e for e in session.list() if e.id in chosen])
    report.note(FIG_16B_NOTE)
    settings = session.triggers()
    report.note(f"kept on the card: '{format_condition(settings.condition) if settings.condition else ''}', "
                f"every {settings.period_days} days, on shortage: automatic backup")
    new = ValueRecord(ValueType.TICKET, "Movie ticket X", issuer="Cinema B", valid_from=date(2000, 3, 20),
                      valid_to=date(2000, 3, 31), place="B", acquired_at=datetime(2000, 3, 15, 12), payload=TICKET_DATA)
    report.step(f"Storing {new.name} ({len(new.body())} bytes) with {session.info().free_memory} bytes free")
    value_id, made = triggers.store(session, new, link, TODAY, settings.policy)
    for o in made:
        report.note(f"{o.name}: {o.action} to make room")
    report.note(f"stored {new.name} as value {value_id}")
    report.listing(session.list())


def run_key_story(old: WalletSession, new: WalletSession, vault: VaultClient, keymgr: KeyManagerClient,
                  report: Reporter) -> None:
    """Seeds E2-E4: an encrypted backup, the card's key split between the key manager, the vault
    and the owner's recovery code, and the key rebuilt on a fresh card."""
    report.step("A third card generates its own key (P-256; the private part never leaves it)")
    old.personalize(DEMO_PIN)
    old.verify_pin(DEMO_PIN)
    info = old.generate_key()
    report.note(f"key id {info.key_id.hex().upper()}")
    value_id = old.store(FIG15[0])
    key = connect(old, vault)
    report.step("Encrypted backup of movie ticket A (E2): the vault gets digest and ciphertext only")
    report.note(f"{FIG15[0].name}: {backup(old, vault, key, value_id).action}")
    report.listing(old.list())
    report.step("The owner opens an account at the key manager and splits the card's key 2 of 3 (E4)")
    keymgr.create_account("hanako", "correct horse battery")
    factors.login(keymgr, "hanako", "correct horse battery")
    _, codes = keys.split_key(old, keymgr, vault)
    report.note("share 1 sealed on the card to the key manager, share 2 to the vault, share 3 to the owner:")
    report.note(f"recovery code {codes[0]}")
    report.step("The card is lost; a fresh card gets the key back from the key manager's share and the code")
    new.personalize(DEMO_PIN)
    new.verify_pin(DEMO_PIN)
    restored = keys.restore_split_key(new, keymgr, old.identity().card_id, codes)
    report.note(f"fresh card {new.identity().card_id.hex().upper()} now holds key "
                f"{restored.key_id.hex().upper()} ({'the same key' if restored == info else 'ANOTHER KEY'}); "
                "neither server alone could rebuild it")
    report.step("The owner reports the card lost: the vault revokes it and hands its certificates to the "
                "fresh card, which restores the value")
    connect(new, vault)
    recovery = recovery_flow.recover(new, vault, keymgr, old.identity().card_id)
    report.note(f"{recovery.imported} certificate handed over; restored: "
                + ", ".join(o.name for o in recovery.restored))
    report.listing(new.list())
    try:
        connect(old, vault)
        report.note("the lost card still opens a session: NOT REVOKED")
    except VaultClientError as exc:
        report.note(f"the lost card, if found, is refused: {exc.message}")
    report.step("The fresh card backs the ticket up again and rotates its key (E7): each backup is "
                "re-encrypted on the card under a new pair, then the old key is destroyed")
    backup(new, vault, vault.public_key(), 1)
    rotation = rotation_flow.rotate(new, vault, keymgr)
    report.note(f"key {info.key_id.hex().upper()} -> {rotation.key.key_id.hex().upper()}: {rotation.moved} "
                f"backup re-encrypted, {rotation.destroyed} old key destroyed at the key manager")
    report.note(f"{restore(new, vault, 1).name}: restored under the new key")


def run_rekey_story(session: WalletSession, lose_key: Callable[[], None], vault: VaultClient,
                    keymgr: KeyManagerClient, report: Reporter, heir: WalletSession | None = None) -> None:
    """Seed E7 (claims 16, 46): a card whose key store broke is re-keyed by the key manager,
    which opens its backups with the escrowed key; the card-side rotation could not. With
    ``heir``, E4 as the seed has it (claim 49): another card rebuilds the new key from the key
    manager's part and the vault's part riding with a value the key manager re-sealed."""
    session.verify_pin(DEMO_PIN)
    key = connect(session, vault)
    ids = [e.id for e in session.list()]
    report.step("The fresh card backs up its values, encrypted; then its key store breaks (simulated: keys "
                "401/402 wiped)")
    for value_id in ids:
        report.note(f"{backup(session, vault, key, value_id).name}: encrypted backup")
    lose_key()
    report.note(f"the card's key now: {session.key_info().mode.name.lower()}; its certificates stand for values "
                "it cannot open any more")
    report.listing(session.list())
    try:
        rotation_flow.rotate(session, vault, keymgr)
        report.note("the card-side rotation ran without a key: UNEXPECTED")
    except keys.KeyFlowError as exc:
        report.note(f"the card-side rotation cannot help: {exc}")
    report.step("The key manager re-keys the card (E7): it fetches each registered value from the vault, opens "
                "it with the escrowed key, re-seals it under a new pair; the vault registers the successor, the "
                "card swaps certificates, then installs the new key sealed to it")
    done = rekey_flow.rekey_by_keymgr(session, vault, keymgr)
    report.note(f"new key {done.key.key_id.hex().upper()}: {done.moved} certificate(s) succeeded, "
                f"{done.destroyed} old key destroyed at the key manager")
    if heir is not None:
        run_per_value_step(session, heir, ids[0], vault, keymgr, report)
    for value_id in ids:
        report.note(f"{restore(session, vault, value_id).name}: restored with the new key")
    report.listing(session.list())


def run_per_value_step(session: WalletSession, heir: WalletSession, value_id: int, vault: VaultClient,
                       keymgr: KeyManagerClient, report: Reporter) -> None:
    """Seed E4 (claims 7, 49) after E7: part 405 at the key manager, part 406 in every registered
    value (those the key manager re-sealed too); a new card rebuilds the key from the two."""
    report.step("The owner escrows the key per value (E4): part 405 at the key manager, part 406 rides "
                "with every registered value; another card rebuilds the key from the two")
    keys.backup_key_parts(session, keymgr)
    heir.personalize(DEMO_PIN)
    heir.verify_pin(DEMO_PIN)
    connect(heir, vault)  # the vault seals its part to the card whose session asks
    certificate = session.read(value_id).certificate
    rebuilt = keys.restore_key_parts(heir, keymgr, vault, session.identity().card_id, certificate)
    connect(session, vault)
    report.note(f"card {heir.identity().card_id.hex().upper()} rebuilt key {rebuilt.key_id.hex().upper()} "
                f"({'the same key' if rebuilt == session.key_info() else 'ANOTHER KEY'}) from part 405 and the "
                f"part 406 of the re-sealed {session.read(value_id).name}: no recovery code, no lost-card report")


def run_factor_story(card: WalletSession, spare: WalletSession, id_card: IdCardSession, keymgr: KeyManagerClient,
                     report: Reporter) -> None:
    """Seed E5: the owner adds an ID card (a second reader) and makes the key manager need it
    with the password; the key is then restored with both."""
    doc = id_card.document()
    report.step("The owner enrols an ID card from a second reader and requires password AND ID card (E5)")
    factors.enrol_id_card(keymgr, id_card)
    report.note(f"ID card {doc.number} of {doc.holder}, valid to {doc.expiry}: it signed a fresh challenge")
    report.note(f"policy: {keymgr.set_policy('password and id-card')}")
    try:
        keymgr.login("hanako", "correct horse battery")
        report.note("the password alone still logs in: POLICY NOT ENFORCED")
    except KeyManagerClientError as exc:
        report.note(f"the password alone is refused: {exc.message}")
    factors.login(keymgr, "hanako", "correct horse battery", id_card=id_card)
    report.note("logged in with the password and the ID card's signature over the key manager's challenge")
    spare.personalize(DEMO_PIN)
    spare.verify_pin(DEMO_PIN)
    card.verify_pin(DEMO_PIN)
    restored = keys.restore_key(spare, keymgr, card.identity().card_id)
    report.note(f"key {restored.key_id.hex().upper()} restored onto a spare card "
                f"({'the same key' if restored == card.key_info() else 'ANOTHER KEY'})")
