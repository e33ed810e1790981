"""The terminal's client of the vault's HTTP API (see :mod:`servers.vault.app`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from apdu.certificate import DigestField

from .api_client import ApiClient, ServiceError, b64


class VaultClientError(ServiceError):
    service = "vault"


@dataclass(frozen=True)
class RegistrationInfo:
    counter: int
    value_hash: bytes
    certificate: bytes
    created_at: int


class VaultClient(ApiClient):
    error = VaultClientError

    def __enter__(self) -> VaultClient:
        return self

    # --- API ---------------------------------------------------------------------------------

    def public_key(self) -> bytes:
        return base64.b64decode(self._call("GET", "/v1/vault")["public_key"])

    def digest_fields(self) -> tuple[DigestField, ...]:
        """The value fields this vault copies into certificates."""
        return tuple(DigestField[f.upper()] for f in self._call("GET", "/v1/vault")["digest_fields"])

    def challenge(self, card_id: bytes) -> bytes:
        return base64.b64decode(self._call("POST", "/v1/challenges", {"card_id": card_id.hex()})["challenge"])

    def open_session(self, card_id: bytes, public_key: bytes, challenge: bytes, signature: bytes) -> None:
        body = {"card_id": card_id.hex(), "public_key": b64(public_key), "challenge": b64(challenge),
                "signature": b64(signature)}
        self._token = self._call("POST", "/v1/sessions", body)["token"]

    def register(self, value: bytes) -> RegistrationInfo:
        return _registration(self._call("POST", "/v1/registrations", {"value": b64(value)}))

    def register_encrypted(self, registered_value: bytes) -> RegistrationInfo:
        return _registration(self._call("POST", "/v1/registrations", {"registered_value": b64(registered_value)}))

    def keep_key_share(self, key_id: bytes, sealed_share: bytes) -> None:
        self._call("POST", "/v1/key-shares", {"key_id": key_id.hex(), "sealed_share": b64(sealed_share)})

    def registrations(self) -> list[RegistrationInfo]:
        return [_registration(r) for r in self._call("GET", "/v1/registrations")]

    def restore(self, certificate: bytes) -> bytes:
        return base64.b64decode(self._call("POST", "/v1/restorations", {"certificate": b64(certificate)})["value"])

    def release(self, counter: int, value_hash: bytes, receipt: bytes) -> bool:
        body = {"counter": counter, "value_hash": value_hash.hex(), "receipt": b64(receipt)}
        return bool(self._call("POST", "/v1/releases", body)["released"])


def _registration(raw: dict[str, Any]) -> RegistrationInfo:
    return RegistrationInfo(raw["counter"], bytes.fromhex(raw["value_hash"]), base64.b64decode(raw["certificate"]),
                            raw["created_at"])
