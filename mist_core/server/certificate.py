"""The certificate of the daemon's TCP listener when the operator gives none: a self-signed ECDSA P-256 one,
made once in the data directory and reused across restarts, so a fingerprint pinned by clients stays valid."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..client import certificate_fingerprint

CERT_NAME = "api.crt"
KEY_NAME = "api.key"
VALID_DAYS = 3650  # long on purpose: a new certificate breaks every client's pin


def _alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in [*hosts, socket.gethostname(), "localhost", "127.0.0.1", "::1"]:
        if not host or host in seen or host in ("0.0.0.0", "::"):
            continue
        seen.add(host)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            with contextlib.suppress(ValueError):
                names.append(x509.DNSName(host))
    return names


def _write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, readable by nobody else at any moment (mode set at creation)."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _still_valid(cert_path: Path, key_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return False
    now = datetime.datetime.now(datetime.UTC)
    same_key = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return same_key and cert.not_valid_after_utc > now + datetime.timedelta(days=1)


def ensure_self_signed(directory: Path, hosts: list[str]) -> tuple[Path, Path, bool]:
    """The certificate and key files in ``directory`` (made when missing, unreadable or expiring), and whether
    they were made now. ``hosts`` go into the certificate's names besides this machine's and loopback's."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    cert_path, key_path = directory / CERT_NAME, directory / KEY_NAME
    if _still_valid(cert_path, key_path):
        os.chmod(key_path, 0o600)
        return cert_path, key_path, False
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Mist daemon on {socket.gethostname()}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_alt_names(hosts)), critical=False)
        # Not a CA: pinning it trusts this certificate, never one it could sign.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, True


def fingerprint_of_file(cert_path: Path) -> str:
    """``SHA256:aa:bb:...`` of the first certificate in a PEM file (what ``fetch_certificate`` shows)."""
    return certificate_fingerprint(cert_path.read_text())
