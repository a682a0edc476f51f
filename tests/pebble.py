"""Pebble, the ACME test server, for integration tests: a TLS certificate for 127.0.0.1 made here,
``pebble-challtestsrv`` as its DNS (every name resolves to 127.0.0.1), HTTP-01 validation sent to the port
of the test's own challenge responder."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mist test pebble CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_path, cert_path, key_path


@dataclass
class Pebble:
    """A running Pebble and its DNS server. ``directory_url`` and ``ca_bundle`` are what Mist's settings take."""

    workdir: Path
    http_port: int
    listen_port: int
    management_port: int
    ca_bundle: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.listen_port}/dir"

    def root_pem(self) -> str:
        """Pebble's current root certificate (it makes a new one on every start)."""
        response = httpx.get(f"https://127.0.0.1:{self.management_port}/roots/0", verify=self.tls_context())
        response.raise_for_status()
        return response.text

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_bundle)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.processes.clear()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(self.workdir.glob("*.log"))
        )


def start_pebble(workdir: Path, *, http_port: int, validity_seconds: int | None = None) -> Pebble:
    """Start pebble-challtestsrv and Pebble; HTTP-01 validations go to 127.0.0.1:``http_port``.

    ``validity_seconds`` shortens the certificates Pebble issues (its ``certificateValidityPeriod``).
    Call ``stop()`` when done (it also runs if starting fails).
    """
    ca_path, cert_path, key_path = write_tls_files(workdir / "tls")
    dns_port, dns_management = free_port(), free_port()
    pebble = Pebble(
        workdir=workdir,
        http_port=http_port,
        listen_port=free_port(),
        management_port=free_port(),
        ca_bundle=str(ca_path),
    )
    config: dict[str, object] = {
        "listenAddress": f"127.0.0.1:{pebble.listen_port}",
        "managementListenAddress": f"127.0.0.1:{pebble.management_port}",
        "certificate": str(cert_path),
        "privateKey": str(key_path),
        "httpPort": http_port,
        "tlsPort": free_port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }
    if validity_seconds is not None:
        config["certificateValidityPeriod"] = validity_seconds
    config_path = workdir / "pebble-config.json"
    config_path.write_text(json.dumps({"pebble": config}, indent=2))
    env = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_VA_ALWAYS_VALID": "0",
        "PEBBLE_WFE_NONCEREJECT": "0",
        "PEBBLE_AUTHZREUSE": "0",
    }
    try:
        pebble.processes.append(
            subprocess.Popen(
                [
                    CHALLTESTSRV,
                    "-dns01",
                    f"127.0.0.1:{dns_port}",
                    "-management",
                    f"127.0.0.1:{dns_management}",
                    "-http01",
                    "",
                    "-https01",
                    "",
                    "-tlsalpn01",
                    "",
                    "-defaultIPv4",
                    "127.0.0.1",
                    "-defaultIPv6",
                    "",
                ],
                stdout=(workdir / "challtestsrv.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        _wait_for(lambda: httpx.get(f"http://127.0.0.1:{dns_management}/").status_code > 0, pebble)
        pebble.processes.append(
            subprocess.Popen(
                [PEBBLE, "-config", str(config_path), "-dnsserver", f"127.0.0.1:{dns_port}"],
                stdout=(workdir / "pebble.log").open("wb"),
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        _wait_for(
            lambda: httpx.get(pebble.directory_url, verify=pebble.tls_context()).status_code == 200, pebble
        )
    except BaseException:
        pebble.stop()
        raise
    return pebble


def _wait_for(check: object, pebble: Pebble, attempts: int = 200) -> None:
    assert callable(check)
    last: Exception | None = None
    for _ in range(attempts):
        if any(p.poll() is not None for p in pebble.processes):
            raise RuntimeError(f"a Pebble process exited while starting:\n{pebble.logs()}")
        try:
            if check():
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"Pebble did not start ({last}):\n{pebble.logs()}")
