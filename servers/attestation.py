"""Cards are issued: a server believes a card's identity key only when an issuer it pins signed
it (:class:`apdu.backup.Attestation`), and an ID card's document only when the document issuer
did. Shared by the vault and the key manager."""

from __future__ import annotations

from apdu import backup as b
from apdu.idcard import IdDocument
from apdu.signature import verify

from .wire import ApiError


def check_attestation(issuers: tuple[bytes, ...], identity: b.Identity, raw: bytes,
                      error: type[ApiError]) -> None:
    """Refuse (403) an identity that no issuer this server trusts attested: the one defence
    against a stranger binding a card id to a key of their own before the card shows up."""
    if not issuers:
        raise error(403, "this server trusts no card issuer (start it with --issuer-key)")
    try:
        attestation = b.Attestation.from_bytes(raw)
    except ValueError as exc:
        raise error(400, f"malformed attestation: {exc}") from exc
    if attestation.issuer_key not in issuers:
        raise error(403, "the card was attested by an issuer this server does not trust")
    if not verify(attestation.issuer_key, attestation.signature, b.Attestation.message(identity)):
        raise error(403, "the issuer's attestation does not name this card and key")


def check_document(issuers: tuple[bytes, ...], document: IdDocument, error: type[ApiError]) -> None:
    """Refuse (403) an ID document no trusted document issuer signed: holder, number and expiry
    are the issuer's word, not the card's."""
    if not issuers:
        raise error(403, "this key manager trusts no ID-card issuer (start it with --id-issuer-key)")
    if not any(verify(key, document.signature, document.message()) for key in issuers):
        raise error(403, "the ID document is not signed by an ID-card issuer this key manager trusts")
