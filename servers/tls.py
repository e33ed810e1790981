"""TLS for the servers: the certificate and key a server presents, and a small local CA that
makes them (``evb tls init``, ``evb demo``).

A public deployment takes its certificate from a public CA and the clients trust the system
store; on a closed network or on loopback, ``init_folder`` makes a CA and a server certificate
for the given names (localhost, 127.0.0.1 and ::1 by default), and the clients trust that CA
with ``--ca FILE``. Private keys are written 0600 and refused when group or others can read them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keyfile import KeyFileError, check_private, private_dir

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
SERVER_DAYS = 825  # the longest a browser would accept; renew with 'evb tls init' again

CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
SERVER_CERT, SERVER_KEY = "server.pem", "server-key.pem"


class TlsError(ValueError):
    """A certificate or key a server cannot use; the message names the file."""


@dataclass(frozen=True)
class ServerTls:
    """The PEM certificate (chain) and private key a server presents."""

    cert: Path
    key: Path

    def check(self) -> None:
        """Fail before serving, with the file's name, rather than in uvicorn's start-up."""
        try:
            check_private(self.key)
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.cert, self.key)
        except KeyFileError as exc:
            raise TlsError(str(exc)) from exc
        except OSError as exc:  # ssl.SSLError is one too
            raise TlsError(f"cannot serve TLS with {self.cert} and {self.key}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class Issued:
    """What ``init_folder`` made: the CA certificate clients trust, and the server's pair."""

    ca_cert: Path
    server: ServerTls


def init_folder(folder: Path, names: tuple[str, ...] = LOOPBACK_NAMES) -> Issued:
    """A CA in ``folder`` (made on first use, reused after) and a new server certificate for
    ``names`` signed by it."""
    private_dir(folder)
    ca_cert, ca_key = folder / CA_CERT, folder / CA_KEY
    if ca_cert.exists() != ca_key.exists():
        raise TlsError(f"{folder} holds half a CA ({CA_CERT} and {CA_KEY} go together)")
    if ca_cert.exists():
        ca = _load_ca(ca_cert, ca_key)
    else:
        ca = _make_ca(ca_cert, ca_key)
    server = ServerTls(folder / SERVER_CERT, folder / SERVER_KEY)
    make_server_cert(ca, server, names)
    return Issued(ca_cert, server)


@dataclass(frozen=True)
class LocalCa:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _make_ca(cert_path: Path, key_path: Path) -> LocalCa:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evb local CA")])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5)).not_valid_after(_now() + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return LocalCa(cert, key)


def _load_ca(cert_path: Path, key_path: Path) -> LocalCa:
    try:
        check_private(key_path)
    except KeyFileError as exc:
        raise TlsError(str(exc)) from exc
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except ValueError as exc:
        raise TlsError(f"{cert_path} and {key_path} are not a CA certificate and key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsError(f"{key_path} does not hold an EC private key")
    return LocalCa(cert, key)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make_server_cert(ca: LocalCa, target: ServerTls, names: tuple[str, ...]) -> None:
    """A P-256 server certificate for ``names`` (host names or IP addresses), signed by ``ca``."""
    if not names:
        raise TlsError("a server certificate needs at least one name")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
            .sign(ca.key, hashes.SHA256()))
    target.key.unlink(missing_ok=True)
    _write_key(target.key, key)
    target.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def verify_context(ca: Path | None) -> ssl.SSLContext:
    """A client's check of a server: its certificate chains to ``ca`` (only), or to the system
    store without one, and names the host in the URL."""
    try:
        return ssl.create_default_context(cafile=str(ca) if ca else None)
    except OSError as exc:  # ssl.SSLError is one
        raise TlsError(f"cannot use {ca} as a CA certificate (PEM): {exc.strerror or exc}") from exc


def untrusted_reason(exc: BaseException) -> str | None:
    """Why a TLS client refused the server's certificate, if that is what ``exc`` comes from."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"its TLS certificate is refused ({seen.verify_message})"
        seen = seen.__cause__ or seen.__context__
    return None
