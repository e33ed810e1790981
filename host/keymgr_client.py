"""The terminal's client of the key manager's HTTP API (see :mod:`servers.keymgr.app`)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from apdu.backup import Attestation
from apdu.keys import KeyMode
from apdu.rekey import RekeyJob, Succession

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
class Factors:
    """What the owner shows at login, and again (step-up) with each sensitive request: enrolling
    a card, reporting one lost, changing the password, the policy or a factor."""

    password: str | None = None
    id_card: IdCardAnswer | None = None
    fingerprint: bytes | None = None

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"password": self.password}
        if self.id_card is not None:
            body["id_card"] = {"number": self.id_card.number, "challenge": b64(self.id_card.challenge),
                               "signature": b64(self.id_card.signature)}
        if self.fingerprint is not None:
            body["fingerprint"] = b64(self.fingerprint)
        return body


Prover = Callable[[], Factors]  # fresh factors for one request (an ID card signs a new challenge)


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
    public_key: bytes = b""  # Q beside a share of a public key, for IMPORT SHARE


class KeyManagerClient(ApiClient):
    error = KeyManagerClientError
    _prover: Prover | None = None

    def prove_with(self, prover: Prover | None) -> None:
        """How this client steps up: ``prover`` answers the owner's factors afresh for each
        sensitive request. Without one, the key manager refuses those requests (403)."""
        self._prover = prover

    def _proof(self) -> dict[str, object] | None:
        return self._prover().body() if self._prover is not None else None

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
                                                       "vault_key": b64(vault_key), "proof": self._proof()})
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
                                         "signature": b64(signature), "proof": self._proof()})

    def create_account(self, name: str, password: str) -> None:
        self._call("POST", "/v1/accounts", {"name": name, "password": password})

    def login(self, name: str, password: str | None = None, id_card: IdCardAnswer | None = None,
              fingerprint: bytes | None = None) -> int:
        """Log in with the factors given (the account's policy says which it needs)."""
        answer = self._call("POST", "/v1/sessions", {"name": name, **Factors(password, id_card, fingerprint).body()})
        self._token = answer["token"]
        return int(answer["expires_at"])

    def logout(self) -> None:
        """End the session at the key manager: its token opens nothing from now on."""
        self._call("DELETE", "/v1/sessions/current")
        self._token = None

    def auth_challenge(self, name: str) -> bytes:
        return base64.b64decode(self._call("POST", "/v1/auth-challenges", {"name": name})["challenge"])

    def enrol_id_card(self, document: bytes, challenge: bytes, signature: bytes) -> None:
        self._call("POST", "/v1/factors/id-card", {"document": b64(document), "challenge": b64(challenge),
                                                   "signature": b64(signature), "proof": self._proof()})

    def set_password(self, password: str) -> None:
        """A new password: the key manager ends every other session of the account."""
        self._call("POST", "/v1/factors/password", {"password": password, "proof": self._proof()})

    def enrol_fingerprint(self, samples: list[bytes]) -> None:
        self._call("POST", "/v1/factors/fingerprint", {"samples": [b64(s) for s in samples], "proof": self._proof()})

    def set_policy(self, policy: str) -> str:
        return str(self._call("PUT", "/v1/policy", {"policy": policy, "proof": self._proof()})["policy"])

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

    def escrow_share(self, card_id: bytes, key_id: bytes, mode: KeyMode, sealed: bytes, per_value: bool = False) -> None:
        self._call("POST", "/v1/share-escrows", {"card_id": card_id.hex(), "key_id": key_id.hex(),
                                                 "mode": mode.name.lower(), "sealed": b64(sealed),
                                                 "kind": "per-value" if per_value else "shamir"})

    def restore_share(self, card_id: bytes, target_card_id: bytes, transport_key: bytes, per_value: bool = False,
                      key_id: bytes | None = None) -> KeyRestoration:
        """Share 1 of the 2-of-3 split, or (``per_value``) the part 405; of ``key_id`` or the newest key."""
        answer = self._call("POST", "/v1/share-restorations", {
            "card_id": card_id.hex(), "target_card_id": target_card_id.hex(), "transport_key": b64(transport_key),
            "kind": "per-value" if per_value else "shamir", **({"key_id": key_id.hex()} if key_id else {})})
        return KeyRestoration(KeyMode[answer["mode"].upper()], bytes.fromhex(answer["key_id"]),
                              base64.b64decode(answer["sealed"]), base64.b64decode(answer["public_key"] or ""))

    # --- re-keying by the key manager (E7/E8, :mod:`host.rekey`) -------------------------------

    def begin_rekey(self, card_id: bytes) -> RekeyJob:
        """The card's re-keying job (the same again while it is under way); a step-up request."""
        answer = self._call("POST", "/v1/rekeys", {"card_id": card_id.hex(), "proof": self._proof()})
        return RekeyJob(KeyMode[answer["mode"].upper()], bytes.fromhex(answer["old_key_id"]),
                        bytes.fromhex(answer["new_key_id"]))

    def rekey_value(self, card_id: bytes, certificate: bytes) -> Succession:
        answer = self._call("POST", f"/v1/rekeys/{card_id.hex()}/values", {"certificate": b64(certificate)})
        return Succession(base64.b64decode(answer["certificate"]), base64.b64decode(answer["succession"]))

    def rekey_key(self, card_id: bytes, transport_key: bytes) -> KeyRestoration:
        answer = self._call("POST", f"/v1/rekeys/{card_id.hex()}/key", {"transport_key": b64(transport_key)})
        return KeyRestoration(KeyMode[answer["mode"].upper()], bytes.fromhex(answer["key_id"]),
                              base64.b64decode(answer["sealed"]))
