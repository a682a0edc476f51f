"""Run one image build with BuildKit through the ``docker build`` command line, streaming its output line by
line, with build secrets passed as files that never reach the image, its history or the log.

The ``docker`` process runs on the host as Mist's user, so nothing a user sets reaches its environment:
build-argument values travel as data on its command line, and its environment is the fixed one of
``mist_core.procs.host_process_env``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import shutil
import signal
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from mist_core.errors import BuildCancelled, BuildFailed, EngineUnavailable, InvalidInput
from mist_core.procs import HOST_PATH, die_with_parent, host_process_env

SCRUBBED = "******"
TAIL_LINES = 20

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# What the docker CLI prints (in several spellings across versions) when it cannot reach the engine.
_ENGINE_DOWN = (
    "cannot connect to the docker daemon",
    "is the docker daemon running",
    "is 'docker daemon' running",
    "error during connect",
    "permission denied while trying to connect to the docker daemon",
)

# A single "line" longer than this (a minified bundle echoed by a build) is cut into pieces so memory stays
# bounded.
_MAX_LINE = 64 * 1024
_KILL_GRACE = 5.0

LineSink = Callable[[str], Awaitable[None] | None]


async def build_image(
    *,
    context_dir: Path,
    dockerfile: Path,
    tag: str,
    labels: dict[str, str],
    build_args: dict[str, str],
    secrets: dict[str, str],
    on_line: LineSink,
    docker_bin: str = "/usr/bin/docker",
    cancel: asyncio.Event | None = None,
    timeout: float | None = None,
    docker_host: str | None = None,
) -> str:
    """Build ``context_dir`` with ``dockerfile`` into ``tag`` and return the image id (``sha256:...``).

    Each build argument is one ``--build-arg=NAME=VALUE`` element of the CLI's argument list, so any value
    (one that starts with ``-`` or holds ``=`` too) reaches the Dockerfile's ``ARG NAME`` intact and can
    never configure the CLI, and any name is just a name (``LD_PRELOAD`` or ``DOCKER_HOST`` included). Like
    any command line, these values are visible in the host's process list, and the image's history keeps
    them: a secret belongs in ``secrets``, whose values go to BuildKit as 0600 files (``--secret``) that
    reach neither. Every output line (stdout and stderr, in order) goes to ``on_line``, a plain or an async
    function, with secret values masked. Raises ``BuildFailed`` (non-zero exit or ``timeout`` seconds
    elapsed), ``BuildCancelled`` (``cancel`` was set) or ``EngineUnavailable``. ``docker_host``
    (``unix:///...``, ``tcp://...``) chooses the engine when it is not the CLI's default.
    """
    _check_names(build_args, "build variable")
    _check_names(secrets, "build secret")
    if cancel is not None and cancel.is_set():
        raise BuildCancelled("The build was cancelled before it started.")
    # Looked up in the same fixed PATH the process gets, not in the daemon's.
    docker_path = shutil.which(docker_bin, path=HOST_PATH)
    if docker_path is None:
        raise EngineUnavailable(
            f"The docker command '{docker_bin}' was not found: install the Docker CLI or point Mist's "
            "docker binary setting at it."
        )

    scrub = _Scrubber(secrets.values())
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    workdir = Path(tempfile.mkdtemp(prefix="mist-build-"))  # mkdtemp makes it 0700
    proc: asyncio.subprocess.Process | None = None
    reader: asyncio.Future[None] | None = None
    try:
        iidfile = workdir / "iid"
        home = workdir / "home"
        home.mkdir(mode=0o700)
        argv = [
            docker_path,
            "build",
            "--progress=plain",
            "-f",
            str(Path(dockerfile).resolve()),
            "-t",
            tag,
            "--iidfile",
            str(iidfile),
        ]
        for key, value in labels.items():
            argv += ["--label", f"{key}={value}"]
        for name, value in build_args.items():
            # One element, name and value together: nothing in the value can be read as an option.
            argv.append(f"--build-arg={name}={value}")
        for index, (name, value) in enumerate(secrets.items()):
            path = workdir / f"secret-{index}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(value)
            argv += ["--secret", f"id={name},src={path}"]
        # An absolute path cannot be mistaken for an option.
        argv.append(str(Path(context_dir).resolve()))

        mist_set = {"DOCKER_BUILDKIT": "1"}
        if docker_host:
            mist_set["DOCKER_HOST"] = docker_host
        env = host_process_env(home, mist_set)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group, so a kill reaches every child
                preexec_fn=die_with_parent,  # a killed daemon must not leave a build running
            )
        except OSError as exc:
            raise EngineUnavailable(f"Could not run '{docker_bin}': {exc.strerror or exc}.") from exc

        async def pump() -> None:
            assert proc is not None and proc.stdout is not None
            async for line in _lines(proc.stdout):
                clean = scrub(line)
                tail.append(clean)
                result = on_line(clean)
                if inspect.isawaitable(result):
                    await result
            await proc.wait()

        reader = asyncio.ensure_future(pump())
        waiters: set[asyncio.Future[Any]] = {reader}
        cancel_wait: asyncio.Future[Any] | None = None
        if cancel is not None:
            cancel_wait = asyncio.ensure_future(cancel.wait())
            waiters.add(cancel_wait)
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if cancel_wait is not None:
                cancel_wait.cancel()
        if reader not in done:
            await _kill(proc)
            if cancel is not None and cancel.is_set():
                raise BuildCancelled("The build was cancelled.")
            raise BuildFailed(
                f"The build did not finish within {timeout:g} seconds and was stopped: make it faster or "
                "raise the build timeout.\n" + "\n".join(tail),
                tail=list(tail),
            )
        reader.result()  # re-raise an error from on_line

        if proc.returncode != 0:
            text = "\n".join(tail)
            if any(marker in text.lower() for marker in _ENGINE_DOWN):
                raise EngineUnavailable(
                    f"The Docker Engine did not answer the build: {tail[-1] if tail else ''}"
                )
            if "buildx component is missing" in text:
                raise BuildFailed(
                    f"The docker command '{docker_bin}' cannot run BuildKit builds (its buildx plugin is "
                    "missing): install docker-buildx, or set Mist's docker binary setting to a client with "
                    "BuildKit built in, such as /usr/bin/docker from Debian's docker.io package.",
                    tail=list(tail),
                )
            raise BuildFailed(
                f"The image build failed (docker build exited with {proc.returncode}). Last lines:\n{text}",
                tail=list(tail),
                exit_code=proc.returncode,
            )
        image_id = iidfile.read_text().strip()
        if not image_id:
            raise BuildFailed("The build finished but reported no image id.\n" + "\n".join(tail))
        return image_id
    finally:
        if proc is not None and proc.returncode is None:
            # The calling task itself was cancelled: do not leave the build running behind it.
            await _kill(proc)
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        shutil.rmtree(workdir, ignore_errors=True)


def _check_names(values: dict[str, str], what: str) -> None:
    for name, value in values.items():
        if not _NAME.match(name):
            raise InvalidInput(
                f"The {what} name '{name}' cannot be used in a build: use letters, digits and '_' only, "
                "not starting with a digit."
            )
        if "\0" in value:
            raise InvalidInput(f"The value of the {what} '{name}' contains a NUL character.")


async def _lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    buffer = b""
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            break
        buffer += chunk
        while True:
            cut = buffer.find(b"\n")
            if cut < 0:
                if len(buffer) > _MAX_LINE:
                    cut = _MAX_LINE
                    yield _decode(buffer[:cut])
                    buffer = buffer[cut:]
                    continue
                break
            yield _decode(buffer[:cut])
            buffer = buffer[cut + 1 :]
    if buffer:
        yield _decode(buffer)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r")


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """Stop the CLI and everything it started; the engine abandons the build when the CLI's session ends."""
    for sig, wait in ((signal.SIGTERM, _KILL_GRACE), (signal.SIGKILL, None)):
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), timeout=wait)
            return
        except TimeoutError:
            continue


class _Scrubber:
    """Masks secret values in output lines: a second line of defence, since secrets are mounted as files
    and a build that prints one is the only way one could reach the log."""

    def __init__(self, values: Iterable[str]) -> None:
        pieces: set[str] = set()
        for value in values:
            if value:
                pieces.add(value)
                # The output is split into lines, so each line of a multi-line secret is masked on its own.
                pieces.update(part for part in value.splitlines() if part.strip())
        self.pieces = sorted(pieces, key=len, reverse=True)

    def __call__(self, line: str) -> str:
        for piece in self.pieces:
            if piece in line:
                line = line.replace(piece, SCRUBBED)
        return line
