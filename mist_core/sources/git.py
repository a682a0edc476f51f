"""Fetching one commit of a git repository into a work directory, with the real ``git`` run as a subprocess
that no repository, server or user configuration can turn into running something else.

Every git call gets an argument list, an environment built from scratch by ``procs.host_process_env`` (an
empty ``HOME``, no system or global config, no prompts, only the URL's own protocol allowed) and ``-c``
settings that switch off hooks, fsmonitor, submodules and credential helpers. URL and ref are validated
again here, before any process starts. Credentials (an https token, an ssh deploy key, pinned host keys)
reach git only through 0600 files in that temporary home, which is removed when the fetch ends.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import shlex
import shutil
import signal
import tempfile
import unicodedata
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from .. import validate
from ..errors import Conflict, FetchFailed, InvalidInput
from ..printable import printable
from ..procs import HOST_PATH, die_with_parent, host_process_env
from .keys import public_key_of

__all__ = ["Checkout", "FetchCancelled", "FetchFailed", "fetch"]

LineCallback = Callable[[str], Awaitable[None] | None]


class FetchCancelled(FetchFailed):
    """The fetch was stopped on request (the deployment was cancelled)."""

    code: ClassVar[str] = "fetch_cancelled"
    status: ClassVar[int] = 409


@dataclass(frozen=True)
class Checkout:
    path: Path
    commit_sha: str
    message: str  # the subject line
    author: str  # "Name <email>"
    # The host keys ssh trusted on first use (known_hosts lines), for the caller to pin and show; None when
    # the fetch was not over ssh or ran against pinned host keys.
    known_hosts: str | None = None


# Settings that a repository's own config, a user's ~/.gitconfig or a server cannot override, because
# command-line config wins. They close the ways a fetch or checkout could run a program.
_HARDENING = (
    "-c", "protocol.ext.allow=never",
    "-c", "protocol.fd.allow=never",
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.askPass=",
    "-c", "credential.helper=",
    "-c", "submodule.recurse=false",
    "-c", "fetch.recurseSubmodules=false",
    "-c", "safe.bareRepository=explicit",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
    "-c", "advice.detachedHead=false",
    "-c", "init.defaultBranch=mist",
)  # fmt: skip

_TAIL_LINES = 40
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


def _protocol(url: str) -> str:
    """The one transport git may use for this (validated) URL."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        return "ssh"  # scp-like user@host:path
    return scheme


def _secrets(url: str) -> list[str]:
    """The password (or token-as-user) in ``url``, raw and percent-decoded, to scrub from git's output."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = []
    if parts.password:
        found.append(parts.password)
    elif parts.username and parts.scheme in ("http", "https"):
        found.append(parts.username)
    found += [unquote(s) for s in found]
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


@dataclass(frozen=True)
class _Remote:
    """What a failure message needs to know about where and how git fetched."""

    shown_url: str  # credentials masked
    host: str  # "host" or "host:port", for ssh host key messages
    credential: str | None  # "token", "url" (a token inside the URL), "key" (a deploy key) or None
    pinned: bool  # ssh ran against host keys the caller pinned


def _presented_fingerprint(tail: Sequence[str]) -> str | None:
    """The ``SHA256:`` fingerprint ssh says the server sent, from its host-key-changed warning."""
    for before, line in zip(tail, tail[1:], strict=False):
        if "key sent by the remote host is" in before and line.startswith("SHA256:"):
            fingerprint = line.strip().rstrip(".")
            return fingerprint if _FINGERPRINT.fullmatch(fingerprint) else None
    return None


def _explain(tail: Sequence[str], remote: _Remote, ref: str, kind: str) -> tuple[str, str]:
    """Why a fetch failed (``ref``, ``auth``, ``host_key``, ``tls``, ``ownership``, ``repository``,
    ``network`` or ``other``) and a message for the user, from the last lines git printed."""
    text = "\n".join(tail).lower()
    shown_url, host = remote.shown_url, remote.host

    def said(*needles: str) -> bool:
        return any(needle in text for needle in needles)

    # ssh checks the host before it authenticates, and its banner mentions keys, so this goes first.
    if said("remote host identification has changed", "has changed and you have requested strict checking"):
        presented = _presented_fingerprint(tail)
        now = f" (it now presents {presented})" if presented else ""
        return "host_key", (
            f"the ssh host key of {host} changed since it was pinned{now}: if the server's admin replaced it, "
            "check the new fingerprint with them and pin it again; otherwise the connection may be intercepted, "
            "so do not trust the new key"
        )
    if said("you have requested strict checking", "host key verification failed"):
        if remote.pinned:
            return "host_key", (
                f"the ssh host key of {host} is not among the pinned host keys: pin its key after checking its "
                "fingerprint with the server's admin, or clear the pinned keys to trust it on first use"
            )
        return "host_key", f"the ssh host key of {host} is not trusted: add it to the pinned host keys"
    if said(
        "ssl certificate problem",
        "server certificate verification failed",
        "certificate verify failed",
        "unable to get local issuer certificate",
    ):
        return "tls", (
            f"the TLS certificate of {shown_url} is not trusted: if the git server uses a private CA, give that "
            "CA's certificate (PEM) as the CA file"
        )
    if said("couldn't find remote ref", "no such remote ref", "not our ref", "unadvertised object"):
        return "ref", f"{kind} {ref!r} not found in {shown_url}: check the name, or push it first"
    if said("mist: no token for"):  # printed by the askpass script: the credentials were for another host
        return "auth", (
            f"{shown_url} redirected git to another host that asks for credentials, and the token is only "
            "given to the host in the URL: use the repository's URL on that host instead"
        )
    if said(
        "authentication failed",
        "could not read username",
        "could not read password",
        "terminal prompts disabled",
        "permission denied (publickey",
        "the requested url returned error: 401",
        "the requested url returned error: 403",
    ):
        if remote.credential == "token":
            return "auth", (
                f"the git server refused the token for {shown_url}: check that it is valid (not expired or "
                "revoked) and can read the repository"
            )
        if remote.credential == "url":
            return "auth", (
                f"authentication failed for {shown_url}: the git server refused the token in the URL; check "
                "that it is valid (not expired or revoked) and can read the repository"
            )
        if remote.credential == "key":
            return "auth", (
                f"the git server refused the deploy key for {shown_url}: add its public key to the "
                "repository's deploy keys (read access is enough)"
            )
        if said("permission denied (publickey"):
            return "auth", (
                f"authentication failed for {shown_url}: the git server wants an ssh key; give the app a "
                "deploy key and add its public key to the repository's deploy keys"
            )
        return "auth", (
            f"authentication failed for {shown_url}: the repository is private (or the URL is wrong); give a "
            "token that can read it"
        )
    if said("dubious ownership"):
        return "ownership", (
            f"{shown_url} belongs to another user, so git refuses to read it: serve it over ssh or https"
        )
    if said(
        "repository not found",
        "does not appear to be a git repository",
        "not a git repository",
        "the requested url returned error: 404",
        "no such file or directory",
    ):
        hint = " and that the credentials can read it" if remote.credential else ""
        return "repository", f"repository {shown_url} not found: check the URL{hint}"
    if said(
        "could not resolve host",
        "could not resolve hostname",
        "connection refused",
        "failed to connect",
        "connection timed out",
        "network is unreachable",
        "no route to host",
        "unable to access",
        "could not read from remote repository",
    ):
        return (
            "network",
            f"repository {shown_url} is not reachable: check the host name, the port and the network",
        )
    last = next((line for line in reversed(tail) if line.strip()), "no output")
    return "other", f"git could not fetch {kind} {ref!r} from {shown_url}: {last}"


_TOKEN_MAX = 4096
_TOKEN_USER = re.compile(r"[A-Za-z0-9._~+-]{1,100}")
# git asks "Username for '<scheme>://<host>': " when the URL names no user, then "Password for
# '<scheme>://<user>@<host>': ". The script answers only for the origin the token is for, so a redirect to
# another host cannot collect it; everything it reads is a file in the temporary home.
_ASKPASS = """#!/bin/sh
origin=$(cat -- {origin})
scheme=${{origin%%://*}}
host=${{origin#*://}}
case "$1" in
    "Username for '$origin': ") exec cat -- {username} ;;
    "Password for '$scheme://"*"@$host': ") exec cat -- {token} ;;
esac
echo "mist: no token for $1" >&2
exit 1
"""


@dataclass(frozen=True)
class _Credentials:
    """The files in the temporary home that carry one fetch's credentials to git and ssh."""

    askpass: Path | None = None  # script that prints the token file's content
    ssh_key: Path | None = None
    known_hosts: Path | None = None  # for ssh: the pinned keys, or an empty file that learns them
    pinned: bool = False
    ca_file: Path | None = None


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a new file that only Mist's user can read, never through a symlink or over an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, mode)  # the umask may have taken bits off


def _check_token(token: str, token_username: str, url: str) -> None:
    if not isinstance(token, str) or not token:
        raise InvalidInput(
            "the git token is empty: give the token, or none for a public repository", field="token"
        )
    if len(token) > _TOKEN_MAX:
        raise InvalidInput(
            f"the git token is {len(token)} characters long: tokens are at most {_TOKEN_MAX}", field="token"
        )
    if any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in token):
        raise InvalidInput(
            "the git token contains spaces, line breaks or invisible characters: copy it again without them",
            field="token",
        )
    if not isinstance(token_username, str) or not _TOKEN_USER.fullmatch(token_username):
        raise InvalidInput(
            "the git token's user name must be letters, digits and . _ ~ + - (for example x-access-token)",
            field="token_username",
        )
    try:
        in_url = urlsplit(url).password
    except ValueError:
        in_url = None
    if in_url:
        raise InvalidInput(
            "the git URL already carries a password or token: give the token either in the URL or as the "
            "token, not both",
            field="token",
        )


def _check_known_hosts(known_hosts: str) -> str:
    if not isinstance(known_hosts, str) or "\x00" in known_hosts:
        raise InvalidInput("the pinned ssh host keys must be known_hosts text", field="known_hosts")
    lines = [line.strip() for line in known_hosts.splitlines()]
    return "".join(line + "\n" for line in lines if line)


def _check_ca_file(ca_file: Path) -> Path:
    ca_file = Path(ca_file).absolute()
    if not ca_file.is_file():
        raise InvalidInput(
            f"the CA certificate file {ca_file} does not exist: give the path of a PEM file", field="ca_file"
        )
    return ca_file


def _ssh_host(url: str) -> str:
    """``host`` or ``host:port`` of an ssh URL (validated), as messages about host keys name it."""
    if "://" not in url:
        return url.partition("@")[2].rpartition(":")[0] or url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL, as git names it when it asks for credentials."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _prepare_credentials(
    home: Path,
    url: str,
    protocol: str,
    *,
    token: str | None,
    token_username: str,
    ssh_private_key: str | None,
    known_hosts: str | None,
    ca_file: Path | None,
) -> _Credentials:
    """Write what git and ssh need into ``home`` (0700, removed after the fetch)."""
    askpass = ssh_key = known_hosts_file = None
    if token is not None and protocol in ("http", "https"):
        _write_private(home / "git-origin", _origin(url))
        _write_private(home / "git-username", token_username + "\n")
        _write_private(home / "git-token", token + "\n")
        askpass = home / "git-askpass"
        script = _ASKPASS.format(
            origin=shlex.quote(str(home / "git-origin")),
            username=shlex.quote(str(home / "git-username")),
            token=shlex.quote(str(home / "git-token")),
        )
        _write_private(askpass, script, mode=0o700)
    if protocol == "ssh":
        if ssh_private_key is not None:
            ssh_key = home / "deploy-key"
            _write_private(ssh_key, ssh_private_key.strip() + "\n")
        known_hosts_file = home / "known_hosts"
        _write_private(known_hosts_file, known_hosts or "")
    return _Credentials(
        askpass=askpass,
        ssh_key=ssh_key,
        known_hosts=known_hosts_file,
        pinned=bool(known_hosts) and protocol == "ssh",
        ca_file=ca_file if protocol == "https" else None,
    )


class _GitSession:
    """The environment, deadline and output handling shared by the git calls of one fetch."""

    def __init__(
        self,
        *,
        git: str,
        dest: Path,
        home: Path,
        protocol: str,
        secrets: list[str],
        on_line: LineCallback | None,
        cancel: asyncio.Event | None,
        timeout: float,
        credentials: _Credentials,
    ) -> None:
        self.git = git
        self.dest = dest
        self.secrets = secrets
        self.on_line = on_line
        self.cancel = cancel
        self.timeout = timeout
        self.deadline = asyncio.get_running_loop().time() + timeout
        # Only these and what procs.host_process_env fixes (PATH, locale, HOME, the operator's proxies and
        # CA bundles) reach git: nothing from the daemon's own environment or from a user.
        mist_set = {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            "GIT_ALLOW_PROTOCOL": protocol,
            "GIT_TEMPLATE_DIR": str(home / "template"),
        }
        if credentials.askpass is not None:
            # GIT_ASKPASS wins over the empty core.askPass above; the script only prints files from home.
            mist_set["GIT_ASKPASS"] = str(credentials.askpass)
        if credentials.ca_file is not None:
            mist_set["GIT_SSL_CAINFO"] = str(credentials.ca_file)
        if protocol == "ssh":
            # -F /dev/null: no ~/.ssh/config or /etc/ssh/ssh_config (ssh reads the passwd home, not $HOME).
            ssh = ["ssh", "-F", os.devnull, "-o", "BatchMode=yes", "-o", "ConnectTimeout=30"]
            if credentials.ssh_key is not None:
                # The deploy key alone: not the operator's ssh agent, even when one is reachable.
                ssh += [
                    "-i",
                    str(credentials.ssh_key),
                    "-o",
                    "IdentitiesOnly=yes",
                    "-o",
                    "IdentityAgent=none",
                ]
            ssh += [
                "-o",
                f"UserKnownHostsFile={credentials.known_hosts}",
                "-o",
                f"GlobalKnownHostsFile={os.devnull}",
                "-o",
                "StrictHostKeyChecking=" + ("yes" if credentials.pinned else "accept-new"),
                # Learned lines must stay readable (to be shown and pinned) and name only the host asked for.
                "-o",
                "HashKnownHosts=no",
                "-o",
                "UpdateHostKeys=no",
                "-o",
                "CheckHostIP=no",
            ]
            # git runs GIT_SSH_COMMAND through a shell; every part is Mist's own and quoted.
            mist_set["GIT_SSH_COMMAND"] = shlex.join(ssh)
            mist_set["GIT_SSH_VARIANT"] = "ssh"
        self.env = host_process_env(home, mist_set)

    def redact(self, text: str) -> str:
        text = validate.redact_url(text)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        # A hostile server's messages must not send terminal sequences to whoever reads the log.
        return printable(text)

    async def emit(self, line: str) -> None:
        if self.on_line is None:
            return
        result = self.on_line(line)
        if inspect.isawaitable(result):
            await result

    async def _pump(
        self, stream: asyncio.StreamReader, tail: deque[str], stream_output: bool, raw: bool
    ) -> None:
        pending = b""
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                break
            pending += chunk
            if not raw:
                # git draws progress with '\r'; each redraw becomes its own line.
                pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            parts = pending.split(b"\n")
            pending = parts.pop()
            for part in parts:
                await self._line(part, tail, stream_output, raw)
        if pending:
            await self._line(pending, tail, stream_output, raw)

    async def _line(self, data: bytes, tail: deque[str], stream_output: bool, raw: bool) -> None:
        text = data.decode("utf-8", "replace")
        line = text if raw else self.redact(text).rstrip()
        if not line.strip():
            return
        tail.append(line)
        if stream_output:
            await self.emit(line)

    async def run(self, *args: str, stream_output: bool = True, raw: bool = False) -> tuple[int, list[str]]:
        """Run ``git <hardening> <args>`` in ``dest``; return its exit code and its last output lines
        (redacted and made printable unless ``raw``, for output Mist parses itself)."""
        loop = asyncio.get_running_loop()
        remaining = self.deadline - loop.time()
        if remaining <= 0:
            raise FetchFailed(f"fetching took longer than {self.timeout:g} s and was stopped")
        if self.cancel is not None and self.cancel.is_set():
            raise FetchCancelled("the fetch was cancelled")
        proc = await asyncio.create_subprocess_exec(
            self.git,
            *_HARDENING,
            *args,
            cwd=self.dest,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own process group, so a kill reaches ssh, git-remote-https and upload-pack too.
            start_new_session=True,
            preexec_fn=die_with_parent,  # a killed daemon must not leave a clone running
        )
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        assert proc.stdout is not None
        pump = asyncio.ensure_future(self._pump(proc.stdout, tail, stream_output, raw))
        waiters: set[asyncio.Future[Any]] = {pump}
        cancel_wait: asyncio.Future[Any] | None = None
        if self.cancel is not None:
            cancel_wait = asyncio.ensure_future(self.cancel.wait())
            waiters.add(cancel_wait)
        try:
            done, _ = await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if pump not in done:
                if cancel_wait is not None and cancel_wait in done:
                    raise FetchCancelled("the fetch was cancelled")
                raise FetchFailed(f"fetching took longer than {self.timeout:g} s and was stopped")
            pump.result()
            # Output is closed but git may still be winding down; the deadline still holds.
            try:
                code = await asyncio.wait_for(proc.wait(), timeout=max(0.1, self.deadline - loop.time()))
            except TimeoutError:
                raise FetchFailed(f"fetching took longer than {self.timeout:g} s and was stopped") from None
            return code, list(tail)
        finally:
            if cancel_wait is not None:
                cancel_wait.cancel()
            if proc.returncode is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await proc.wait()
            if not pump.done():
                pump.cancel()
                try:
                    await pump
                except (asyncio.CancelledError, Exception):  # noqa: S110 - the process is gone either way
                    pass


def _check_dest(dest: Path) -> None:
    if dest.exists() or dest.is_symlink():
        if not dest.is_dir() or dest.is_symlink():
            raise Conflict(f"cannot fetch into {dest}: it exists and is not a directory")
        if any(dest.iterdir()):
            raise Conflict(f"cannot fetch into {dest}: the directory is not empty")
    dest.mkdir(parents=True, exist_ok=True)


async def fetch(
    url: str,
    ref: str,
    dest: Path,
    *,
    allowed_roots: Sequence[Path],
    on_line: LineCallback | None = None,
    cancel: asyncio.Event | None = None,
    timeout: float = 600,
    token: str | None = None,
    token_username: str = "x-access-token",
    ssh_private_key: str | None = None,
    known_hosts: str | None = None,
    ca_file: Path | None = None,
) -> Checkout:
    """Check out commit ``ref`` (a branch, a tag, or a full or abbreviated sha) of ``url`` into ``dest``.

    ``dest`` must not exist or be empty. git's output goes line by line to ``on_line`` with credentials
    masked. Raises ``InvalidInput`` before any process starts if ``url``, ``ref`` or a credential is not
    acceptable, ``FetchFailed`` with a message for the user if git fails or ``timeout`` seconds pass, and
    ``FetchCancelled`` when ``cancel`` is set; in every case git and its children are killed.

    Credentials, each used only with the URLs it fits (so a caller may pass an app's credentials whatever
    its URL):

    - ``token`` (http/https): sent as the password of HTTP Basic auth, with ``token_username`` as the user
      unless the URL names one (GitHub takes ``x-access-token``, GitLab ``oauth2``, Gitea any name).
    - ``ssh_private_key`` (ssh): an unencrypted OpenSSH private key, the app's deploy key.
    - ``known_hosts`` (ssh): the pinned host keys, as known_hosts lines; the server must present one of them.
      Without it (or when blank) the host key is trusted on first use and returned in
      ``Checkout.known_hosts`` for the caller to pin and show.
    - ``ca_file`` (https): a PEM file of the CA that signed the server's certificate, for git servers behind
      a private CA; it replaces the system's CAs for this fetch (which are used otherwise).
    """
    url = validate.git_url(url, allowed_roots=allowed_roots)
    ref = validate.git_ref(ref)
    protocol = _protocol(url)
    if token is not None:
        _check_token(token, token_username, url)
    if ssh_private_key is not None:
        public_key_of(ssh_private_key)  # refuses a malformed or passphrase-protected key with a clear message
    if known_hosts is not None:
        known_hosts = _check_known_hosts(known_hosts) or None
    if ca_file is not None:
        ca_file = _check_ca_file(ca_file)
    git = shutil.which("git", path=HOST_PATH)  # where the fixed PATH git runs with would find it
    if git is None:
        raise FetchFailed("git is not installed on this server: install it (apt-get install git)")
    dest = Path(dest).absolute()
    _check_dest(dest)

    target_url = url
    if url.startswith("file://"):
        # Fetch from where the symlinks pointed when the URL was checked, not wherever they point next.
        target_url = "file://" + os.path.realpath(url[len("file://") :])
    shown_url = validate.redact_url(url)

    secrets = _secrets(url)
    credential = "url" if secrets else None
    if token is not None and protocol in ("http", "https"):
        credential = "token"
        if len(token) >= 4:
            secrets = sorted({*secrets, token}, key=len, reverse=True)
    elif ssh_private_key is not None and protocol == "ssh":
        credential = "key"
    remote = _Remote(
        shown_url=shown_url,
        host=_ssh_host(url) if protocol == "ssh" else "",
        credential=credential,
        pinned=known_hosts is not None,
    )

    # mkdtemp makes the home 0700: the token, key and askpass files in it are for Mist's user alone.
    with tempfile.TemporaryDirectory(prefix="mist-git-home-") as home_dir:
        home = Path(home_dir)
        (home / "template").mkdir()
        credentials = _prepare_credentials(
            home,
            url,
            protocol,
            token=token,
            token_username=token_username,
            ssh_private_key=ssh_private_key,
            known_hosts=known_hosts,
            ca_file=ca_file,
        )
        session = _GitSession(
            git=git,
            dest=dest,
            home=home,
            protocol=protocol,
            secrets=secrets,
            on_line=on_line,
            cancel=cancel,
            timeout=timeout,
            credentials=credentials,
        )
        code, tail = await session.run(
            "init", "--quiet", f"--template={home / 'template'}", stream_output=False
        )
        if code != 0:
            raise FetchFailed(f"git init failed in {dest}: {tail[-1] if tail else 'no output'}")

        await session.emit(f"Fetching {ref} from {shown_url}")
        fetch_args = ("fetch", "--depth=1", "--no-tags", "--progress", "--", target_url, ref)
        target = "FETCH_HEAD"
        if validate.is_sha(ref):
            # A full sha is asked for directly; servers that refuse unadvertised objects, and abbreviated
            # shas (which no server resolves), get a full fetch and a local lookup instead.
            code, tail = await session.run(*fetch_args)
            if code != 0:
                reason, message = _explain(tail, remote, ref, "commit")
                if reason not in ("ref", "other"):
                    raise FetchFailed(message, output=tail)
                await session.emit(f"{ref} is not fetchable directly; fetching all branches and tags")
                code, tail = await session.run(
                    "fetch",
                    "--no-tags",
                    "--progress",
                    "--",
                    target_url,
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/tags/*",
                )
                if code != 0:
                    raise FetchFailed(_explain(tail, remote, ref, "commit")[1], output=tail)
                code, lines = await session.run(
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    "--end-of-options",
                    f"{ref}^{{commit}}",
                    stream_output=False,
                    raw=True,
                )
                if code != 0 or not lines or not validate.is_sha(lines[-1].strip()):
                    raise FetchFailed(
                        f"commit {ref!r} not found in {shown_url} (or the abbreviation is ambiguous): "
                        "check the sha, or give more of its digits"
                    )
                target = lines[-1].strip()
        else:
            code, tail = await session.run(*fetch_args)
            if code != 0:
                raise FetchFailed(_explain(tail, remote, ref, "branch or tag")[1], output=tail)

        code, tail = await session.run("checkout", "--quiet", "--detach", target, "--")
        if code != 0:
            raise FetchFailed(
                f"could not check out {ref!r}: {tail[-1] if tail else 'no output'}", output=tail
            )

        code, lines = await session.run(
            "log",
            "-1",
            "--no-show-signature",
            "--format=%H%x00%an <%ae>%x00%s",
            "HEAD",
            "--",
            stream_output=False,
            raw=True,
        )
        fields = "\n".join(lines).split("\x00") if code == 0 else []
        if len(fields) != 3 or not validate.is_sha(fields[0]) or len(fields[0]) != 40:
            raise FetchFailed(f"could not read the commit checked out from {shown_url}")
        sha = fields[0]
        # A hostile commit must not send terminal sequences or bidi overrides to whoever reads the log.
        author, message = printable(fields[1]), printable(fields[2])
        await session.emit(f"Checked out {sha[:12]}: {message}")
        learned = None
        if credentials.known_hosts is not None and not credentials.pinned:
            learned = credentials.known_hosts.read_text(encoding="utf-8", errors="replace").strip() or None
        return Checkout(path=dest, commit_sha=sha, message=message, author=author, known_hosts=learned)
