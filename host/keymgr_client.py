"""The terminal's client of the key manager's HTTP API (see :mod:`servers.keymgr.app`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from apdu.backup import Attestation
from apdu.keys import KeyMode

from .api_client import ApiClient, ServiceError, b64
from .vault_client import LostCardStatement


class KeyManagerClientError(ServiceError):
    service = "key manager"


@dataclass(frozen=True)
class IdCardAnswer:
    """What an ID card answered to the key manager's login challenge."""

    number: str
    challenge: bytes
    signature: bytes


@dataclass(frozen=True)
class EscrowedKey:
    key_id: bytes
    mode: KeyMode
    created_at: int


@dataclass(frozen=True)
class KeyRestoration:
    mode: KeyMode
    key_id: bytes
    sealed: bytes  # for the target card's transport key: opaque here


class KeyManagerClient(ApiClient):
    error = KeyManagerClientError

    def __enter__(self) -> KeyManagerClient:
        return self

    def public_key(self) -> bytes:
        return base64.b64decode(self._call("GET", "/v1/keymgr")["public_key"])

    def statement_key(self) -> bytes:
        return base64.b64decode(self._call("GET", "/v1/keymgr")["statement_key"])

    def report_lost(self, card_id: bytes, new_card_id: bytes | None, vault_key: bytes) -> LostCardStatement:
        """A statement signed for the vault whose public key is ``vault_key`` (and no other)."""
        answer = self._call("POST", "/v1/lost-cards", {"card_id": card_id.hex(),
                                                       "new_card_id": new_card_id.hex() if new_card_id else None,
                                                       "vault_key": b64(vault_key)})
        new_key = answer["new_public_key"]
        return LostCardStatement(bytes.fromhex(answer["old_card_id"]), base64.b64decode(answer["old_public_key"]),
                                 bytes.fromhex(answer["new_card_id"]) if answer["new_card_id"] else None,
                                 base64.b64decode(new_key) if new_key else None,
                                 int(answer["issued_at"]), base64.b64decode(answer["signature"]))

    def card_challenge(self) -> bytes:
        return base64.b64decode(self._call("POST", "/v1/card-challenges")["challenge"])

    def enrol_card(self, card_id: bytes, public_key: bytes, attestation: Attestation, challenge: bytes,
                   signature: bytes) -> None:
        self._call("POST", "/v1/cards", {"card_id": card_id.hex(), "public_key": b64(public_key),
                                         "attestation": b64(bytes(attestation)), "challenge": b64(challenge),
                                         "signature": b64(signature)})

    def create_account(self, name: str, password: str) -> None:
        self._call("POST", "/v1/accounts", {"name": name, "password": password})

    def login(self, name: str, password: str | None = None, id_card: IdCardAnswer | None = None,
              fingerprint: bytes | None = None) -> int:
        """Log in with the factors given (the account's policy says which it needs)."""
        body: dict[str, object] = {"name": name, "password": password}
        if id_card is not None:
            body["id_card"] = {"number": id_card.number, "challenge": b64(id_card.challenge),
                               "signature": b64(id_card.signature)}
        if fingerprint is not None:
            body["fingerprint"] = b64(fingerprint)
        answer = self._call("POST", "/v1/sessions", body)
        self._token = answer["token"]
        return int(answer["expires_at"])

    def auth_challenge(self, name: str) -> bytes:
        return base64.b64decode(self._call("POST", "/v1/auth-challenges", {"name": name})["challenge"])

    def enrol_id_card(self, document: bytes, challenge: bytes, signature: bytes) -> None:
        self._call("POST", "/v1/factors/id-card", {"document": b64(document), "challenge": b64(challenge),
                                                   "signature": b64(signature)})

    def set_password(self, password: str) -> None:
        self._call("POST", "/v1/factors/password", {"password": password})

    def enrol_fingerprint(self, samples: list[bytes]) -> None:
        self._call("POST", "/v1/factors/fingerprint", {"samples": [b64(s) for s in samples]})

    def set_policy(self, policy: str) -> str:
        return str(self._call("PUT", "/v1/policy", {"policy": policy})["policy"])

    def factors(self) -> tuple[str, list[tuple[str, str]]]:
        """The account's policy and its enrolled factors (kind, reference)."""
        answer = self._call("GET", "/v1/account")
        return answer["policy"], [(f["kind"], f["ref"]) for f in answer["factors"]]

    def status(self) -> tuple[str, dict[bytes, list[EscrowedKey]]]:
        answer = self._call("GET", "/v1/account")
        cards = {bytes.fromhex(c["card_id"]): [EscrowedKey(bytes.fromhex(k["key_id"]), KeyMode[k["mode"].upper()],
                                                           k["created_at"]) for k in c["keys"]]
                 for c in answer["cards"]}
        return answer["name"], cards

    def escrow(self, card_id: bytes, key_id: bytes, mode: KeyMode, sealed: bytes) -> None:
        self._call("POST", "/v1/escrows", {"card_id": card_id.hex(), "key_id": key_id.hex(),
                                           "mode": mode.name.lower(), "sealed": b64(sealed)})

    def restore_key(self, card_id: bytes, target_card_id: bytes, transport_key: bytes) -> KeyRestoration:
        answer = self._call("POST", "/v1/key-restorations", {"card_id": card_id.hex(),
                                                             "target_card_id": target_card_id.hex(),
                                                             "transport_key": b64(transport_key)})
        return KeyRestoration(KeyMode[answer["mode"].upper()], bytes.fromhex(answer["key_id"]),
                              base64.b64decode(answer["sealed"]))

    def assisted_restore(self, card_id: bytes, certificate: bytes, transport_key: bytes) -> bytes:
        answer = self._call("POST", "/v1/assisted-restorations", {"card_id": card_id.hex(),
                                                                  "certificate": b64(certificate),
                                                                  "transport_key": b64(transport_key)})
        return base64.b64decode(answer["sealed_value"])

    def rotation(self, card_id: bytes) -> tuple[bytes, bytes] | None:
        """(old key id, new key id) of the card's rotation under way."""
        answer = self._call("GET", f"/v1/rotations/{card_id.hex()}")
        if answer["new_key_id"] is None:
            return None
        return bytes.fromhex(answer["old_key_id"]), bytes.fromhex(answer["new_key_id"])

    def begin_rotation(self, card_id: bytes, old_key_id: bytes, new_key_id: bytes) -> None:
        self._call("POST", "/v1/rotations", {"card_id": card_id.hex(), "old_key_id": old_key_id.hex(),
                                             "new_key_id": new_key_id.hex()})

    def finish_rotation(self, card_id: bytes, key_id: bytes) -> int:
        return int(self._call("POST", f"/v1/rotations/{card_id.hex()}/finish", {"key_id": key_id.hex()})["destroyed"])

    def generate_key(self, card_id: bytes, mode: KeyMode, transport_key: bytes) -> KeyRestoration:
        answer = self._call("POST", "/v1/generated-keys", {"card_id": card_id.hex(), "mode": mode.name.lower(),
                                                           "transport_key": b64(transport_key)})
        return KeyRestoration(KeyMode[answer["mode"].upper()], bytes.fromhex(answer["key_id"]),
                              base64.b64decode(answer["sealed"]))

    def escrow_share(self, card_id: bytes, key_id: bytes, mode: KeyMode, sealed: bytes) -> None:
        self._call("POST", "/v1/share-escrows", {"card_id": card_id.hex(), "key_id": key_id.hex(),
                                                 "mode": mode.name.lower(), "sealed": b64(sealed)})

    def restore_share(self, card_id: bytes, target_card_id: bytes, transport_key: bytes) -> KeyRestoration:
        answer = self._call("POST", "/v1/share-restorations", {"card_id": card_id.hex(),
                                                               "target_card_id": target_card_id.hex(),
                                                               "transport_key": b64(transport_key)})
        return KeyRestoration(KeyMode[answer["mode"].upper()], bytes.fromhex(answer["key_id"]),
                              base64.b64decode(answer["sealed"]))
