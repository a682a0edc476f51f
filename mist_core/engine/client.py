"""The connection to one Docker Engine, through docker-py: where the engine is (``unix://``, ``tcp://`` with
TLS from ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``, ``ssh://``), which API version both sides speak
(negotiated with the engine once, never pinned), and a bounded pool of threads that runs docker-py's
blocking calls so the event loop never waits on the engine.

docker-py is imported when the first call connects, not when Mist is imported: a CLI that only talks to a
daemon never pays for it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import queue
import re
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import EngineUnavailable, InvalidInput, MistError
from .address import EngineAddress, parse_engine_address

if TYPE_CHECKING:
    import docker
    import requests

T = TypeVar("T")

# The oldest engine API Mist works with (one-shot stats came in 1.41, Docker 20.10). Older engines get a clear
# refusal; newer ones speak the highest version both sides know.
API_VERSION_MIN = "1.41"
# Threads that run blocking engine calls (stats readings have their own, below). Deployments, API calls and
# the proxy's look-ups rarely need more than a few at once; each thread costs about 50 KB resident.
ENGINE_THREADS = 8
# Streams open at once that may keep their (closed) connection objects for the next: more are made as
# needed, these are only what is kept.
STREAM_POOL = 64
# Threads that only read container stats. Docker answers a one-shot reading at its next collection tick
# (up to a second), so a sweep of 100 containers takes about 100 / STATS_THREADS seconds; on their own
# threads, the sweep never makes other calls wait.
STATS_THREADS = 32
# A thread with no work for this long leaves: an idle daemon keeps none of the sweep's threads.
IDLE_THREAD_SECONDS = 60.0
# Per call, connection included (docker-py's default); stop and restart add their grace period.
DEFAULT_TIMEOUT = 60
# How Docker words a missing image (docker-py's list): a 404 from create means the image, or the network.
_IMAGE_MISSING = (
    "no such image",
    "not found: does not exist or no pull access",
    "repository does not exist",
    "was found but does not match the specified platform",
)
ADDRESS_FIX = "set MIST_DOCKER_HOST to unix:///path/docker.sock, tcp://host:port or ssh://user@host"


class DockerAPIError(Exception):
    """The engine answered with a 4xx or 5xx status; ``explanation`` is its message."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(f"{status}: {explanation}")
        self.status = status
        self.explanation = explanation

    @property
    def image_missing(self) -> bool:
        return self.status == 404 and any(part in self.explanation.lower() for part in _IMAGE_MISSING)


def negotiate_version(url: str, server: Mapping[str, Any], newest_known: str) -> str:
    """The API version to speak with an engine that answered ``/version`` with ``server``: the highest both
    know, never below the engine's own minimum. An engine older than Mist's minimum is refused, saying what
    it is and what to do."""
    api = str(server.get("ApiVersion") or "")
    if not re.fullmatch(r"\d+\.\d+", api):
        raise MistError(f"the Docker Engine at {url} did not say which API version it speaks: is it Docker?")
    if _version(api) < _version(API_VERSION_MIN):
        release = server.get("Version") or "unknown"
        raise EngineUnavailable(
            f"the Docker Engine at {url} is too old for Mist: Docker {release} speaks API {api}, and Mist "
            f"needs API {API_VERSION_MIN} or newer (Docker 20.10 or later): upgrade Docker on that server, or "
            "set MIST_DOCKER_HOST to a newer engine"
        )
    chosen = min(api, newest_known, key=_version)
    minimum = str(server.get("MinAPIVersion") or "")
    if re.fullmatch(r"\d+\.\d+", minimum) and _version(chosen) < _version(minimum):
        chosen = minimum
    return chosen


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


class CallThreads:
    """A bounded pool of daemon threads for blocking engine calls, started as calls need them and leaving
    after ``idle_exit`` seconds without work. Unlike ``ThreadPoolExecutor``'s, these threads do not hold up
    the process's exit: a daemon stopping while Docker is still stopping a container (a long grace period)
    exits at once, and its next start finishes the work."""

    def __init__(self, size: int, name: str, *, idle_exit: float = IDLE_THREAD_SECONDS) -> None:
        self._size = size
        self._name = name
        self._idle_exit = idle_exit
        self._work: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._threads: set[threading.Thread] = set()
        self._waiting = 0  # threads waiting for work
        self._pending = 0  # calls queued and not taken yet
        self._count = 0
        self._lock = threading.Lock()
        self._closed = False

    @property
    def threads(self) -> int:
        return len(self._threads)

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine connection is closed")
            self._work.put((future, call))
            self._pending += 1
            if self._pending > self._waiting and len(self._threads) < self._size:
                self._count += 1
                thread = threading.Thread(target=self._serve, name=f"{self._name}-{self._count}", daemon=True)
                self._threads.add(thread)
                thread.start()
        return future

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                self._waiting += 1
            try:
                item = self._work.get(timeout=self._idle_exit)
            except queue.Empty:
                with self._lock:
                    self._waiting -= 1
                    if self._pending == 0:  # nothing came meanwhile: leave (a new call starts a thread)
                        self._threads.discard(me)
                        return
                continue
            with self._lock:
                self._waiting -= 1
                if item is None:
                    self._threads.discard(me)
                    return
                self._pending -= 1
            future, call = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as error:  # noqa: BLE001 - handed to the caller
                    future.set_exception(error)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            threads = len(self._threads)
        for _ in range(threads):
            self._work.put(None)


class EngineConnection:
    """docker-py's client for one engine, made (and the API version negotiated) on the first call, and the
    pool of threads its blocking calls run on."""

    def __init__(
        self,
        base_url: str,
        *,
        environ: Mapping[str, str] | None = None,
        ssh_config: str | None = None,
    ) -> None:
        self.base_url = base_url
        self._environ = dict(os.environ if environ is None else environ)
        self._ssh_config = ssh_config
        self._api: docker.APIClient | None = None
        # Streams get a client of their own: each holds its connection for as long as it lasts and closes it
        # at the end, so they neither take the calls' pooled connections nor hand closed ones back to them.
        self._stream_api: docker.APIClient | None = None
        self._connecting = threading.Lock()
        self._threads: CallThreads | None = None
        self._stats_threads: CallThreads | None = None
        self.api_version: str | None = None
        self.server: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ errors

    def unavailable(self) -> EngineUnavailable:
        return EngineUnavailable(
            f"the Docker Engine does not answer at {self.base_url}: start it (make docker) or set MIST_DOCKER_HOST"
        )

    def address(self) -> EngineAddress:
        try:
            return parse_engine_address(self.base_url)
        except ValueError as error:
            raise InvalidInput(
                f"{self.base_url!r} is not a Docker Engine address ({error}): {ADDRESS_FIX}",
                field="MIST_DOCKER_HOST",
            ) from error

    def translate(self, error: BaseException) -> BaseException:
        """docker-py's and requests' exceptions as Mist's: a refusal with a status is a ``DockerAPIError``,
        no answer at all is ``EngineUnavailable``; Mist's own errors pass through."""
        import docker.errors
        import requests.exceptions

        if isinstance(error, MistError | DockerAPIError):
            return error
        if isinstance(error, docker.errors.APIError):
            status = error.status_code or 500
            explanation = error.explanation
            if isinstance(explanation, bytes):
                explanation = explanation.decode(errors="replace")
            return DockerAPIError(status, str(explanation or error))
        if isinstance(error, requests.exceptions.RequestException | OSError | EOFError):
            return self.unavailable()
        if isinstance(error, docker.errors.TLSParameterError):
            return InvalidInput(
                f"the TLS settings for the Docker Engine at {self.base_url} are not usable ({error}): point "
                "DOCKER_CERT_PATH at a directory holding ca.pem, cert.pem and key.pem",
                field="DOCKER_CERT_PATH",
            )
        if isinstance(error, docker.errors.DockerException):
            return MistError(f"the Docker Engine at {self.base_url} cannot be used: {error}")
        return error

    # ------------------------------------------------------------------------------------------ the client

    def client(self) -> docker.APIClient:
        """docker-py's client, connected and with the version negotiated. Blocking: call it on a thread."""
        api = self._api
        if api is not None:
            return api
        with self._connecting:
            if self._api is None:
                self._api, self._stream_api = self._connect()
            return self._api

    def stream_client(self) -> docker.APIClient:
        self.client()
        assert self._stream_api is not None
        return self._stream_api

    def _connect(self) -> tuple[docker.APIClient, docker.APIClient]:
        import docker.constants

        address = self.address()
        # Asking /version is unversioned, so the probe speaks any version; the client that stays speaks the
        # negotiated one.
        probe = self._make_client(address, API_VERSION_MIN)
        try:
            server = probe.version(api_version=False)
        finally:
            probe.close()
        version = negotiate_version(self.base_url, server, docker.constants.DEFAULT_DOCKER_API_VERSION)
        self.server = dict(server)
        self.api_version = version
        return self._make_client(address, version), self._make_client(address, version, pool=STREAM_POOL)

    def _make_client(
        self, address: EngineAddress, version: str, *, pool: int = ENGINE_THREADS + STATS_THREADS
    ) -> docker.APIClient:
        import docker
        import docker.utils

        if address.kind == "ssh":
            from .ssh import mount_ssh

            # docker-py's own ssh transport needs paramiko; Mist dials with the system's ssh client instead,
            # behind a client made for a socket path that is never used.
            api = docker.APIClient(
                base_url="unix:///nonexistent", version=version, timeout=DEFAULT_TIMEOUT, max_pool_size=pool
            )
            mount_ssh(api, address, config=self._ssh_config, timeout=DEFAULT_TIMEOUT, max_pool_size=pool)
            return api
        tls: Any = False
        if address.kind == "tcp":
            tls = docker.utils.kwargs_from_env(environment=self._environ).get("tls", False)
            if self.base_url.startswith("https://") and not tls:
                tls = True
        return docker.APIClient(
            base_url=self.base_url, version=version, timeout=DEFAULT_TIMEOUT, tls=tls, max_pool_size=pool
        )

    def _run(self, call: Callable[[docker.APIClient], T]) -> T:
        try:
            return call(self.client())
        except BaseException as error:
            translated = self.translate(error)
            if translated is error:
                raise
            raise translated from error

    async def call(self, call: Callable[[docker.APIClient], T], *, stats: bool = False) -> T:
        """``call(api)`` on one of the pool's threads (the stats pool's for ``stats``); its errors come back
        translated."""
        if stats:
            if self._stats_threads is None:
                self._stats_threads = CallThreads(STATS_THREADS, "mist-stats")
            threads = self._stats_threads
        else:
            if self._threads is None:
                self._threads = CallThreads(ENGINE_THREADS, "mist-engine")
            threads = self._threads
        return await asyncio.wrap_future(threads.submit(functools.partial(self._run, call)))

    def close(self) -> None:
        for threads in (self._threads, self._stats_threads):
            if threads is not None:
                threads.close()
        self._threads = self._stats_threads = None
        for api in (self._api, self._stream_api):
            if api is not None:
                api.close()
        self._api = self._stream_api = None

    # ------------------------------------------------------------------------------------------ streams

    def open_stream(
        self, path: str, params: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT
    ) -> requests.Response:
        """A streamed answer (logs, events): the request is sent and its head read; the body is left for the
        caller, with no read timeout (a quiet stream is not a dead one). Blocking: call it on a thread."""
        try:
            api = self.stream_client()
            # One connection per stream, closed when it ends: never one handed back to a pool.
            response = api._get(
                api._url(path), params=params, stream=True, timeout=timeout, headers={"Connection": "close"}
            )
            try:
                api._raise_for_status(response)
            except BaseException:
                response.close()
                raise
        except BaseException as error:
            translated = self.translate(error)
            if translated is error:
                raise
            raise translated from error
        sock = response_socket(response)
        if sock is not None:
            sock.settimeout(None)
        return response


def response_socket(response: requests.Response) -> socket.socket | None:
    """The socket a streamed response is read from, or None if it cannot be found."""
    fp = getattr(getattr(response.raw, "_fp", None), "fp", None)
    raw = getattr(fp, "raw", None)
    sock = getattr(raw, "_sock", raw)
    return sock if isinstance(sock, socket.socket) else None


def interrupt(response: requests.Response | None) -> None:
    """Wake a thread blocked reading ``response``: it reads the end of the stream. Closing the socket would
    not wake it on Linux; shutting it down does."""
    if response is None:
        return
    sock = response_socket(response)
    if sock is None:
        response.close()
        return
    try:
        # The plain socket's shutdown, so a TLS socket is cut too without touching its TLS state.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def socket_of(hijacked: Any) -> socket.socket:
    """The plain socket behind what docker-py hands back for a hijacked connection."""
    sock = getattr(hijacked, "_sock", hijacked)
    if not isinstance(sock, socket.socket):
        raise MistError("the Docker Engine connection cannot carry an interactive session")
    return sock
