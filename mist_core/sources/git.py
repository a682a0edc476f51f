"""Fetching one commit of a git repository into a work directory, with the real ``git`` run as a subprocess
that no repository, server or user configuration can turn into running something else.

Every git call gets an argument list, an environment built from scratch (an empty ``HOME``, no system or
global config, no prompts, only the URL's own protocol allowed) and ``-c`` settings that switch off hooks,
fsmonitor, submodules and credential helpers. URL and ref are validated again here, before any process starts.
"""

from __future__ import annotations

import asyncio
import inspect
import os
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
from ..errors import Conflict, MistError
from ..procs import die_with_parent

__all__ = ["Checkout", "FetchCancelled", "FetchFailed", "fetch"]

LineCallback = Callable[[str], Awaitable[None] | None]


class FetchFailed(MistError):
    """git could not get the requested commit: repository not found or not reachable, ref not found,
    authentication refused, or the fetch timed out."""

    code: ClassVar[str] = "fetch_failed"
    status: ClassVar[int] = 422


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

# Environment passed through when set: proxies and CA bundles, which an admin sets for the whole server.
_PASSTHROUGH_ENV = (
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "GIT_SSL_CAINFO",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "TMPDIR",
)
_TAIL_LINES = 40


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


def _printable(text: str) -> str:
    """``text`` with control and invisible characters replaced, so a hostile server or commit cannot send
    terminal escape sequences or bidi overrides to whoever reads the log."""
    return "".join("\ufffd" if unicodedata.category(ch) in ("Cc", "Cf") and ch != "\t" else ch for ch in text)


def _explain(tail: Sequence[str], shown_url: str, ref: str, kind: str) -> tuple[str, str]:
    """Why a fetch failed (``ref``, ``auth``, ``host_key``, ``ownership``, ``repository``, ``network`` or
    ``other``) and a message for the user, from the last lines git printed."""
    text = "\n".join(tail).lower()

    def said(*needles: str) -> bool:
        return any(needle in text for needle in needles)

    if said("couldn't find remote ref", "no such remote ref", "not our ref", "unadvertised object"):
        return "ref", f"{kind} {ref!r} not found in {shown_url}: check the name, or push it first"
    if said(
        "authentication failed",
        "could not read username",
        "could not read password",
        "terminal prompts disabled",
        "permission denied (publickey",
        "the requested url returned error: 401",
        "the requested url returned error: 403",
    ):
        return "auth", (
            f"authentication failed for {shown_url}: give a token in the URL (https) or add this server's "
            "deploy key to the repository (ssh)"
        )
    if said("host key verification failed"):
        return (
            "host_key",
            f"the ssh host key of {shown_url} is not trusted: add it to the server's known_hosts",
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
        return "repository", f"repository {shown_url} not found: check the URL"
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
        ssh_key: Path | None,
        known_hosts: Path | None,
    ) -> None:
        self.git = git
        self.dest = dest
        self.secrets = secrets
        self.on_line = on_line
        self.cancel = cancel
        self.timeout = timeout
        self.deadline = asyncio.get_running_loop().time() + timeout
        self.env = {key: os.environ[key] for key in _PASSTHROUGH_ENV if key in os.environ}
        self.env.update(
            {
                "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
                "HOME": str(home),
                "XDG_CONFIG_HOME": str(home / ".config"),
                "LANG": "C",
                "LC_ALL": "C",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": "",
                "SSH_ASKPASS": "",
                "GIT_ALLOW_PROTOCOL": protocol,
                "GIT_TEMPLATE_DIR": str(home / "template"),
            }
        )
        if protocol == "ssh":
            ssh = ["ssh", "-o", "BatchMode=yes"]
            if ssh_key is not None:
                ssh += ["-i", str(ssh_key), "-o", "IdentitiesOnly=yes"]
            if known_hosts is not None:
                ssh += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
            # git runs GIT_SSH_COMMAND through a shell; every part is Mist's own and quoted.
            self.env["GIT_SSH_COMMAND"] = shlex.join(ssh)
            self.env["GIT_SSH_VARIANT"] = "ssh"
            if "SSH_AUTH_SOCK" in os.environ:
                self.env["SSH_AUTH_SOCK"] = os.environ["SSH_AUTH_SOCK"]

    def redact(self, text: str) -> str:
        text = validate.redact_url(text)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _printable(text)

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
    ssh_key: Path | None = None,
    known_hosts: Path | None = None,
) -> Checkout:
    """Check out commit ``ref`` (a branch, a tag, or a full or abbreviated sha) of ``url`` into ``dest``.

    ``dest`` must not exist or be empty. git's output goes line by line to ``on_line`` with credentials
    masked. Raises ``InvalidInput`` before any process starts if ``url`` or ``ref`` is not acceptable,
    ``FetchFailed`` with a message for the user if git fails or ``timeout`` seconds pass, and
    ``FetchCancelled`` when ``cancel`` is set; in every case git and its children are killed.
    """
    url = validate.git_url(url, allowed_roots=allowed_roots)
    ref = validate.git_ref(ref)
    git = shutil.which("git")
    if git is None:
        raise FetchFailed("git is not installed on this server: install it (apt-get install git)")
    dest = Path(dest).absolute()
    _check_dest(dest)

    target_url = url
    if url.startswith("file://"):
        # Fetch from where the symlinks pointed when the URL was checked, not wherever they point next.
        target_url = "file://" + os.path.realpath(url[len("file://") :])
    shown_url = validate.redact_url(url)

    with tempfile.TemporaryDirectory(prefix="mist-git-home-") as home_dir:
        home = Path(home_dir)
        (home / "template").mkdir()
        session = _GitSession(
            git=git,
            dest=dest,
            home=home,
            protocol=_protocol(url),
            secrets=_secrets(url),
            on_line=on_line,
            cancel=cancel,
            timeout=timeout,
            ssh_key=ssh_key,
            known_hosts=known_hosts,
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
                reason, message = _explain(tail, shown_url, ref, "commit")
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
                    raise FetchFailed(_explain(tail, shown_url, ref, "commit")[1], output=tail)
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
                raise FetchFailed(_explain(tail, shown_url, ref, "branch or tag")[1], output=tail)

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
        author, message = _printable(fields[1]), _printable(fields[2])
        await session.emit(f"Checked out {sha[:12]}: {message}")
        return Checkout(path=dest, commit_sha=sha, message=message, author=author)
