"""A real Caddy for tests: a host process with its admin API on a free loopback port and its storage in a
temporary directory, and a raw HTTP(S) client that sets the Host header and the TLS server name."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

CADDY = "/usr/bin/caddy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Response:
    def __init__(self, raw: bytes, cert_der: bytes | None = None) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.cert_der = cert_der


def request(port: int, host: str, path: str = "/", *, tls_ca: str | None = None) -> Response:
    """One HTTP/1.1 GET to 127.0.0.1:port with the Host (and, over TLS, the SNI) given."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    cert = None
    if tls_ca is not None:
        context = ssl.create_default_context(cadata=tls_ca)
        sock = context.wrap_socket(sock, server_hostname=host)
        cert = sock.getpeercert(binary_form=True)
    with sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return Response(b"".join(chunks), cert)


@contextmanager
def running_caddy(workdir: Path) -> Iterator[str]:
    """Start Caddy; yields its admin URL; stops it at the end."""
    admin = f"127.0.0.1:{free_port()}"
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "caddy.json"
    config.write_text(json.dumps({"admin": {"listen": admin}}))
    home = workdir / "caddy-home"
    env = {
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "PATH": "/usr/bin:/bin",
    }
    log = (workdir / "caddy.log").open("wb")
    proc = subprocess.Popen([CADDY, "run", "--config", str(config)], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://{admin}/config/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("caddy did not start: " + (workdir / "caddy.log").read_text()[-2000:])
            time.sleep(0.1)
        yield f"http://{admin}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
