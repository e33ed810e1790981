"""The terminal's client of the vault's HTTP API (see :mod:`servers.vault.app`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx

from apdu.certificate import DigestField


class VaultClientError(Exception):
    """The vault refused (4xx/5xx) or could not be reached; ``status`` is 0 for the latter."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"vault: {self.message}" if self.status else self.message


@dataclass(frozen=True)
class RegistrationInfo:
    counter: int
    value_hash: bytes
    certificate: bytes
    created_at: int


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class VaultClient:
    def __init__(self, url: str, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VaultClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            response = self._http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise VaultClientError(0, f"cannot reach the vault at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            if isinstance(detail, list):  # FastAPI's validation errors
                detail = "; ".join(str(d.get("msg", d)) for d in detail)
            raise VaultClientError(response.status_code, str(detail))
        return response.json()

    # --- API ---------------------------------------------------------------------------------

    def public_key(self) -> bytes:
        return base64.b64decode(self._call("GET", "/v1/vault")["public_key"])

    def digest_fields(self) -> tuple[DigestField, ...]:
        """The value fields this vault copies into certificates."""
        return tuple(DigestField[f.upper()] for f in self._call("GET", "/v1/vault")["digest_fields"])

    def challenge(self, card_id: bytes) -> bytes:
        return base64.b64decode(self._call("POST", "/v1/challenges", {"card_id": card_id.hex()})["challenge"])

    def open_session(self, card_id: bytes, public_key: bytes, challenge: bytes, signature: bytes) -> None:
        body = {"card_id": card_id.hex(), "public_key": _b64(public_key), "challenge": _b64(challenge),
                "signature": _b64(signature)}
        self._token = self._call("POST", "/v1/sessions", body)["token"]

    def register(self, value: bytes) -> RegistrationInfo:
        return _registration(self._call("POST", "/v1/registrations", {"value": _b64(value)}))

    def registrations(self) -> list[RegistrationInfo]:
        return [_registration(r) for r in self._call("GET", "/v1/registrations")]

    def restore(self, certificate: bytes) -> bytes:
        return base64.b64decode(self._call("POST", "/v1/restorations", {"certificate": _b64(certificate)})["value"])

    def release(self, counter: int, value_hash: bytes, receipt: bytes) -> bool:
        body = {"counter": counter, "value_hash": value_hash.hex(), "receipt": _b64(receipt)}
        return bool(self._call("POST", "/v1/releases", body)["released"])


def _registration(raw: dict[str, Any]) -> RegistrationInfo:
    return RegistrationInfo(raw["counter"], bytes.fromhex(raw["value_hash"]), base64.b64decode(raw["certificate"]),
                            raw["created_at"])
