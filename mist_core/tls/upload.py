"""Checking a certificate and key a user uploads: the PEM parses, the key belongs to the certificate, the
certificate names the domain and is valid now, and each certificate of the chain was issued by the next.
Every refusal says in words what is wrong."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from ..errors import InvalidInput

_BEGIN_CERT = "-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class ParsedCertificate:
    cert_pem: str  # the leaf
    chain_pem: str  # the intermediates that followed it (may be empty)
    key_pem: str  # PKCS#8, unencrypted
    names: list[str]
    not_before: dt.datetime
    not_after: dt.datetime
    serial: str
    issuer: str
    warnings: list[str] = field(default_factory=list)


def validate_upload(cert_pem: str, key_pem: str, *, domain: str, now: dt.datetime) -> ParsedCertificate:
    """Parse and check an uploaded certificate chain (leaf first) and its private key for ``domain``.

    Raises ``InvalidInput`` saying what is wrong; returns the parsed certificate otherwise.
    """
    chain = _load_chain(cert_pem)
    key = _load_key(key_pem)
    leaf = chain[0]

    if not _same_key(leaf, key):
        others = [i for i, cert in enumerate(chain[1:], start=2) if _same_key(cert, key)]
        if others:
            raise InvalidInput(
                f"the chain is out of order or incomplete: the key belongs to certificate {others[0]} "
                f"({_subject(chain[others[0] - 1])}); the server's own certificate must come first",
                field="certificate",
            )
        raise InvalidInput(
            f"the key does not match the certificate ({_subject(leaf)}): upload the private key that was "
            "made with this certificate's request",
            field="key",
        )

    names = _names(leaf)
    if not any(name_matches(pattern, domain) for pattern in names):
        listed = ", ".join(names) if names else "no domain name at all"
        raise InvalidInput(f"the certificate is for {listed}, not {domain}", field="certificate")

    for position, cert in enumerate(chain, start=1):
        which = (
            "the certificate" if position == 1 else f"the chain's certificate {position} ({_subject(cert)})"
        )
        if now < cert.not_valid_before_utc:
            raise InvalidInput(
                f"{which} is not valid yet: it starts on {_day(cert.not_valid_before_utc)}",
                field="certificate",
            )
        if now >= cert.not_valid_after_utc:
            raise InvalidInput(
                f"{which} expired on {_day(cert.not_valid_after_utc)}: get a new one", field="certificate"
            )

    for position in range(1, len(chain)):
        child, parent = chain[position - 1], chain[position]
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            raise InvalidInput(
                "the chain is out of order or incomplete: certificate "
                f"{position + 1} ({_subject(parent)}) did not issue certificate {position} "
                f"({_subject(child)}, issued by {_issuer(child)}); put the server's certificate first, then "
                "each intermediate after the certificate it signed",
                field="certificate",
            ) from None

    warnings = []
    if len(chain) == 1 and leaf.issuer != leaf.subject:
        warnings.append(
            f"the certificate comes without its intermediate chain (it was issued by {_issuer(leaf)}); "
            "clients that do not already have that certificate will not trust it"
        )
    return ParsedCertificate(
        cert_pem=leaf.public_bytes(serialization.Encoding.PEM).decode(),
        chain_pem="".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain[1:]),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        names=names,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        serial=format(leaf.serial_number, "x"),
        issuer=_issuer(leaf),
        warnings=warnings,
    )


def name_matches(pattern: str, domain: str) -> bool:
    """Whether a certificate name covers ``domain``: equal (ignoring case), or ``*.example.com`` covering
    exactly one label in front of ``example.com``."""
    pattern, domain = pattern.lower().rstrip("."), domain.lower().rstrip(".")
    if pattern == domain:
        return True
    if pattern.startswith("*."):
        label, _, rest = domain.partition(".")
        return bool(label) and label != "*" and rest == pattern[2:]
    return False


_PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | dsa.DSAPrivateKey
)


def _load_chain(cert_pem: str) -> list[x509.Certificate]:
    if _BEGIN_CERT not in cert_pem:
        if "PRIVATE KEY-----" in cert_pem:
            raise InvalidInput(
                "the certificate field holds a private key: put the certificate (BEGIN CERTIFICATE) there "
                "and the key in the key field",
                field="certificate",
            )
        raise InvalidInput(
            "no certificate found: upload the PEM text that starts with -----BEGIN CERTIFICATE-----",
            field="certificate",
        )
    try:
        chain = x509.load_pem_x509_certificates(cert_pem.encode())
    except ValueError:
        raise InvalidInput(
            "the certificate is not valid PEM (a block is damaged or truncated): upload it again as text",
            field="certificate",
        ) from None
    return chain


def _load_key(key_pem: str) -> _PrivateKey:
    if "PRIVATE KEY-----" not in key_pem:
        raise InvalidInput(
            "no private key found: upload the PEM text that starts with -----BEGIN PRIVATE KEY----- "
            "(or BEGIN RSA/EC PRIVATE KEY)",
            field="key",
        )
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        raise InvalidInput(
            "the private key is protected by a passphrase: remove it first "
            "(openssl pkey -in key.pem -out plain.pem)",
            field="key",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInput(
            "the private key is not valid PEM (damaged, truncated or of an unsupported type)", field="key"
        ) from None
    if not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey
        | dsa.DSAPrivateKey,
    ):
        raise InvalidInput("the private key is of a type TLS does not use", field="key")
    return key


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _same_key(cert: x509.Certificate, key: _PrivateKey) -> bool:
    try:
        return _spki(cert.public_key()) == _spki(key.public_key())
    except (ValueError, UnsupportedAlgorithm):
        return False


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
        if names:
            return list(names)
    except x509.ExtensionNotFound:
        pass
    # Clients ignore the common name once a SAN exists; without one it is the only name there is.
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _subject(cert: x509.Certificate) -> str:
    return _name(cert.subject)


def _issuer(cert: x509.Certificate) -> str:
    return _name(cert.issuer)


def _name(name: x509.Name) -> str:
    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"CN={common[0].value!s}" if common else (name.rfc4514_string() or "an unnamed certificate")


def _day(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d}"
