"""Real git servers on 127.0.0.1 for tests: ``git http-backend`` behind HTTP Basic auth (plain or TLS with a
CA made for the test), and an ``sshd`` of the test's own that serves repositories by path to one deploy key."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gitutil import git, git_env, init_repo

SSHD = "/usr/sbin/sshd"
REPO_ROOT = Path(__file__).resolve().parents[1]


def bare_repo(
    path: Path, files: dict[str, str], *, branch: str = "main", message: str = "First commit"
) -> str:
    """A bare repository at ``path`` (as a git server keeps them) with ``files`` in one commit on ``branch``;
    returns the commit's sha."""
    work = path.with_name(path.name + ".work")
    init_repo(work, files, branch=branch, message=message)
    sha = git(work, "rev-parse", "HEAD")
    subprocess.run(
        ["git", "clone", "--quiet", "--bare", str(work), str(path)],
        check=True,
        env=git_env(),
        capture_output=True,
    )
    shutil.rmtree(work)
    return sha


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -------------------------------------------------------------------------------------------------- https


class _GitHTTPBackend(BaseHTTPRequestHandler):
    """Runs ``git http-backend`` as a CGI for each request, after checking the Basic credentials."""

    project_root: ClassVar[Path]
    token: ClassVar[str | None]
    username: ClassVar[str | None]
    seen_users: ClassVar[list[str]]
    seen_passwords: ClassVar[list[str]]
    redirect_to: ClassVar[str | None]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.serve()

    def do_POST(self) -> None:
        self.serve()

    def _authorized(self) -> str | None:
        """The user name when the request carries the token (any user, or the one required), else None."""
        header = self.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return None
        self.seen_users.append(user)
        self.seen_passwords.append(password)
        if password != self.token or (self.username is not None and user != self.username):
            return None
        return user

    def serve(self) -> None:
        if self.redirect_to is not None:
            self.send_response(302)
            self.send_header("Location", self.redirect_to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        user = ""
        if self.token is not None:
            found = self._authorized()
            if found is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            user = found
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "HOME": str(self.project_root),
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_USER": user,
        }
        if self.headers.get("Content-Encoding") == "gzip":
            env["HTTP_CONTENT_ENCODING"] = "gzip"
        result = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for raw in head.decode("latin-1").split("\r\n"):
            key, _, value = raw.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mist test git CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_pem, cert_pem, key_pem


class GitHTTPServer:
    """``git http-backend`` for the bare repositories under ``project_root``, on 127.0.0.1.

    With ``token``, every request needs HTTP Basic auth with that password (and ``username`` when given);
    the user names and passwords clients sent are kept in ``seen_users`` and ``seen_passwords``. With
    ``tls_dir``, it serves https with a certificate from a CA whose PEM file is ``ca_file``. With
    ``redirect_to`` (``scheme://host:port``), it answers every request with a redirect there.
    """

    def __init__(
        self,
        project_root: Path,
        *,
        token: str | None = None,
        username: str | None = None,
        tls_dir: Path | None = None,
        redirect_to: str | None = None,
    ) -> None:
        self.seen_users: list[str] = []
        self.seen_passwords: list[str] = []
        handler = type(
            "Handler",
            (_GitHTTPBackend,),
            {
                "project_root": project_root,
                "token": token,
                "username": username,
                "seen_users": self.seen_users,
                "seen_passwords": self.seen_passwords,
                "redirect_to": redirect_to,
            },
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.ca_file: Path | None = None
        self.scheme = "http"
        if tls_dir is not None:
            self.ca_file, cert, key = _tls_files(tls_dir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, repo: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{repo}"

    def start(self) -> GitHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def git_http_server(
    project_root: Path,
    *,
    token: str | None = None,
    username: str | None = None,
    tls_dir: Path | None = None,
    redirect_to: str | None = None,
) -> Iterator[GitHTTPServer]:
    server = GitHTTPServer(
        project_root, token=token, username=username, tls_dir=tls_dir, redirect_to=redirect_to
    ).start()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------------- ssh


def sshd_missing() -> str | None:
    """Why no sshd can run here, after trying to install it (as root, with the project's script); None when
    one can."""
    if os.access(SSHD, os.X_OK):
        return None
    script = REPO_ROOT / "scripts" / "ensure-system-packages.sh"
    if os.geteuid() == 0 and script.exists():
        subprocess.run(["bash", str(script), "openssh-server", "openssh-client"], capture_output=True)
    if os.access(SSHD, os.X_OK):
        return None
    return f"{SSHD} is not installed and could not be installed: run `make system-packages` as root"


class SshGitServer:
    """An ``sshd`` on 127.0.0.1:<free port> with its own host key and authorized_keys, for the user running the
    tests; git clients reach a bare repository by its absolute path (``url``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.host_key = directory / "ssh_host_ed25519_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mist-test-sshd", "-f", str(self.host_key)],
            check=True,
            capture_output=True,
        )
        self.host_public_key = " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])
        self.authorized_keys = directory / "authorized_keys"
        self.authorized_keys.write_text("")
        self.user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
        self.port = free_port()
        self.config = directory / "sshd_config"
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"PidFile {directory / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    f"AllowUsers {self.user}",
                    "StrictModes no",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "PrintMotd no",
                    "AllowTcpForwarding no",
                    "X11Forwarding no",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        self.log = directory / "sshd.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """How ssh names this server in known_hosts (a port other than 22 goes in brackets)."""
        return f"[127.0.0.1]:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        return f"{self.host} {self.host_public_key}"

    def url(self, repo: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repo}"

    def authorize(self, public_key: str) -> None:
        """Let ``public_key`` (a deploy key) in, limited as git hosts limit deploy keys: no pty, no forwarding."""
        with self.authorized_keys.open("a") as out:
            out.write(f"restrict {public_key.strip()}\n")

    def start(self) -> SshGitServer:
        # Debian's package creates it at boot; sshd refuses to start without it.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=log, stderr=log)
        for _ in range(200):
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"sshd exited with {self._proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on 127.0.0.1:{self.port}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


@contextmanager
def ssh_git_server(directory: Path) -> Iterator[SshGitServer]:
    server = SshGitServer(directory).start()
    try:
        yield server
    finally:
        server.stop()
