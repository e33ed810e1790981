"""What the terminal's clients of our HTTP services share: a JSON call with a bearer token over
verified TLS, and one typed error whose message is the server's ``detail``."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # httpx is imported by the first client made: a command that never calls pays nothing
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


class CaFileError(ValueError):
    """A ``--ca`` file that holds no usable CA certificate."""


def verify_context(ca: Path | None) -> ssl.SSLContext:
    """The server's certificate must chain to ``ca`` (only), or to the system store without one,
    and name the host in the URL (the same rule as ``servers.tls.verify_context``)."""
    try:
        return ssl.create_default_context(cafile=str(ca) if ca else None)
    except OSError as exc:  # ssl.SSLError is one
        raise CaFileError(f"cannot use {ca} as a CA certificate (PEM): {exc.strerror or exc}") from exc


def _refused_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class ApiClient:
    """``ca``: the CA certificate (PEM) an https:// server's certificate must chain to; without
    it, the system's trust store."""

    error: type[ServiceError] = ServiceError

    def __init__(self, url: str, timeout: float = 10.0, transport: httpx.BaseTransport | None = None,
                 ca: Path | None = None) -> None:
        self.url = url.rstrip("/")
        try:
            verify: ssl.SSLContext | bool = verify_context(ca) if self.url.startswith("https:") else True
        except CaFileError as exc:
            raise self.error(0, str(exc)) from exc
        import httpx

        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport, verify=verify)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            response = self._http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise self.error(0, self._unreachable(exc)) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            if isinstance(detail, list):  # FastAPI's validation errors
                detail = "; ".join(str(d.get("msg", d)) for d in detail)
            raise self.error(response.status_code, str(detail))
        return response.json()

    def _unreachable(self, exc: httpx.HTTPError) -> str:
        import httpx

        where = f"the {self.error.service} at {self.url}"
        if (refused := _refused_certificate(exc)) is not None:
            if "mismatch" in (refused.verify_message or ""):
                return f"{where} is not trusted: its TLS certificate is for another host ({refused.verify_message})"
            return (f"{where} is not trusted: its TLS certificate is refused ({refused.verify_message}); "
                    "give the CA that issued it with --ca FILE (or EVB_CA)")
        if isinstance(exc, httpx.RemoteProtocolError) and self.url.startswith("http:"):
            return f"cannot reach {where}: {exc} (if it serves HTTPS, use an https:// URL)"
        return f"cannot reach {where}: {exc}"
