"""The terminal's client of the vault's HTTP API (see :mod:`servers.vault.app`)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from apdu.backup import Attestation, Handover, RegisteredValue
from apdu.certificate import DigestField
from apdu.keys import KeyMode

from .api_client import ApiClient, ServiceError, b64

T = TypeVar("T")
MAX_BATCH = 32  # the vault's limit (servers.vault.app.MAX_BATCH): the host does not import the servers


class VaultClientError(ServiceError):
    service = "vault"


@dataclass(frozen=True)
class RegistrationInfo:
    counter: int
    value_hash: bytes
    certificate: bytes
    created_at: int
    card_id: bytes = b""  # the card that backed it up


@dataclass(frozen=True)
class LostCardStatement:
    """The key manager's signed word that ``old_card_id`` is lost, as the vault takes it."""

    old_card_id: bytes
    old_public_key: bytes
    new_card_id: bytes | None
    new_public_key: bytes | None
    issued_at: int
    signature: bytes


@dataclass(frozen=True)
class KeyPart:
    """The vault's part 406 of a card's key (E4), sealed to a transport key: opaque here."""

    mode: KeyMode
    key_id: bytes
    sealed: bytes
    public_key: bytes  # Q beside it, for IMPORT SHARE; empty for a symmetric key


class VaultClient(ApiClient):
    error = VaultClientError

    def __enter__(self) -> VaultClient:
        return self

    # --- API ---------------------------------------------------------------------------------

    _about: dict[str, Any] | None = None

    def _vault(self) -> dict[str, Any]:
        """The vault's key and certified fields, asked once per client: they do not change while
        it runs, and a flow of N values should make N requests, not 2N."""
        if self._about is None:
            self._about = self._call("GET", "/v1/vault")
        return self._about

    def public_key(self) -> bytes:
        return base64.b64decode(self._vault()["public_key"])

    def digest_fields(self) -> tuple[DigestField, ...]:
        """The value fields this vault copies into certificates."""
        return tuple(DigestField[f.upper()] for f in self._vault()["digest_fields"])

    def challenge(self, card_id: bytes) -> bytes:
        return base64.b64decode(self._call("POST", "/v1/challenges", {"card_id": card_id.hex()})["challenge"])

    def open_session(self, card_id: bytes, public_key: bytes, attestation: Attestation, challenge: bytes,
                     signature: bytes) -> None:
        body = {"card_id": card_id.hex(), "public_key": b64(public_key), "attestation": b64(bytes(attestation)),
                "challenge": b64(challenge), "signature": b64(signature)}
        self._token = self._call("POST", "/v1/sessions", body)["token"]

    def register(self, value: bytes) -> RegistrationInfo:
        return _registration(self._call("POST", "/v1/registrations", {"value": b64(value)}))

    def register_encrypted(self, registered_value: bytes) -> RegistrationInfo:
        return _registration(self._call("POST", "/v1/registrations", {"registered_value": b64(registered_value)}))

    def register_many(self, values: Sequence[bytes | RegisteredValue]) -> list[RegistrationInfo]:
        """Register several values (plain bytes, or registered values for E2) in as few requests as
        the vault's batch limit allows, answers in the order given. Each batch is all or nothing at
        the vault, and sending one again after a lost answer registers nothing twice."""
        answers = self._in_batches("/v1/registration-batches", "registrations", values, "registrations",
                                   lambda v: {"registered_value": b64(bytes(v))} if isinstance(v, RegisteredValue)
                                   else {"value": b64(v)})
        return [_registration(r) for r in answers]

    def keep_key_share(self, key_id: bytes, sealed_share: bytes) -> None:
        self._call("POST", "/v1/key-shares", {"key_id": key_id.hex(), "sealed_share": b64(sealed_share)})

    def registrations(self) -> list[RegistrationInfo]:
        return [_registration(r) for r in self._call("GET", "/v1/registrations")]

    def restore(self, certificate: bytes) -> bytes:
        return base64.b64decode(self._call("POST", "/v1/restorations", {"certificate": b64(certificate)})["value"])

    def restore_many(self, certificates: Sequence[bytes]) -> list[bytes]:
        """:meth:`restore` of several certificates in as few requests as the batch limit allows,
        answers in the order given; a refusal refuses its whole request (which only reads)."""
        answers = self._in_batches("/v1/restoration-batches", "certificates", certificates, "values", b64)
        return [base64.b64decode(v) for v in answers]

    def release(self, counter: int, value_hash: bytes, receipt: bytes) -> bool:
        body = {"counter": counter, "value_hash": value_hash.hex(), "receipt": b64(receipt)}
        return bool(self._call("POST", "/v1/releases", body)["released"])

    def release_many(self, receipts: Sequence[tuple[int, bytes, bytes]]) -> list[bool]:
        """:meth:`release` of several (counter, X, receipt): whether each registration went, in
        the order given. A batch is checked whole before anything goes, and sent again after a
        lost answer releases nothing twice."""
        answers = self._in_batches("/v1/release-batches", "releases", receipts, "released",
                                   lambda cxr: {"counter": cxr[0], "value_hash": cxr[1].hex(), "receipt": b64(cxr[2])})
        return [bool(g) for g in answers]

    def _in_batches(self, path: str, field: str, items: Sequence[T], answers: str,
                    encode: Callable[[T], Any]) -> list[Any]:
        """POST ``items`` to ``path`` as many at a time as the vault takes, as ``field`` of the
        body; the answers (``answers`` of each reply) in the order given."""
        out: list[Any] = []
        for start in range(0, len(items), MAX_BATCH):
            out += self._call("POST", path, {field: [encode(i) for i in items[start:start + MAX_BATCH]]})[answers]
        return out

    def replace_card(self, statement: LostCardStatement) -> int:
        """Deliver the statement; answers how many certificates wait for the new card."""
        body = {"old_card_id": statement.old_card_id.hex(), "old_public_key": b64(statement.old_public_key),
                "new_card_id": statement.new_card_id.hex() if statement.new_card_id else None,
                "new_public_key": b64(statement.new_public_key) if statement.new_public_key else None,
                "issued_at": statement.issued_at, "signature": b64(statement.signature)}
        return int(self._call("POST", "/v1/replacements", body)["waiting"])

    def handover(self, imported: int) -> tuple[Handover | None, int]:
        """The handover numbered ``imported`` (the card's counter), and how many wait after it."""
        answer = self._call("POST", "/v1/handovers", {"imported": imported})
        raw = answer["handover"]
        return (Handover.from_bytes(base64.b64decode(raw)) if raw else None), int(answer["waiting"])

    def key_part(self, certificate: bytes, transport_key: bytes) -> KeyPart:
        """Seed E4 (claim 49): the vault's part of the key of the certificate's card, sealed to
        this card's transport key, with Q (empty for a symmetric key)."""
        answer = self._call("POST", "/v1/key-parts", {"certificate": b64(certificate),
                                                      "transport_key": b64(transport_key)})
        return KeyPart(KeyMode[answer["mode"].upper()], bytes.fromhex(answer["key_id"]),
                       base64.b64decode(answer["sealed_part"]), base64.b64decode(answer["public_key"] or ""))

    def restore_share(self, old_card_id: bytes, key_id: bytes, transport_key: bytes) -> tuple[bytes, bytes]:
        """The vault's share of a replaced card's key, sealed to this card's transport key, and
        Q (empty for a symmetric key), which travels beside it."""
        answer = self._call("POST", "/v1/share-restorations", {"old_card_id": old_card_id.hex(),
                                                               "key_id": key_id.hex(),
                                                               "transport_key": b64(transport_key)})
        return base64.b64decode(answer["sealed_share"]), base64.b64decode(answer["public_key"] or "")


def _registration(raw: dict[str, Any]) -> RegistrationInfo:
    return RegistrationInfo(raw["counter"], bytes.fromhex(raw["value_hash"]), base64.b64decode(raw["certificate"]),
                            raw["created_at"], bytes.fromhex(raw["card_id"]))
