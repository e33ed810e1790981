"""What the terminal's clients of our HTTP services share: a JSON call with a bearer token,
and one typed error whose message is the server's ``detail``."""

from __future__ import annotations

import base64
from typing import Any

import httpx


class ServiceError(Exception):
    """The service refused (4xx/5xx) or could not be reached; ``status`` is 0 for the latter."""

    service = "service"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"{self.service}: {self.message}" if self.status else self.message


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class ApiClient:
    error: type[ServiceError] = ServiceError

    def __init__(self, url: str, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            response = self._http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise self.error(0, f"cannot reach the {self.error.service} at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            if isinstance(detail, list):  # FastAPI's validation errors
                detail = "; ".join(str(d.get("msg", d)) for d in detail)
            raise self.error(response.status_code, str(detail))
        return response.json()
