"""Waiting for a new container to prove it is ready (HTTP path, TCP port, the image's HEALTHCHECK, or just
staying up) before traffic moves to it. A container that exits meanwhile fails the check at once.

The first probe goes as soon as the container runs; while it fails, the next comes 50 ms later, then 100 ms,
doubling up to the configured interval, so an app that is ready within a fraction of a second is not kept
waiting a whole interval. Those quick probes come on top of the configured retries: the check never gives
up sooner than it did with the interval alone. HTTP probes use httpx; TCP probes a plain connection; the
image's HEALTHCHECK is Docker's own health status.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect as pyinspect
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import HealthCheckCancelled, HealthCheckFailed, InvalidInput, MistError
from ..models import HealthCheck
from .docker import Engine, RunningContainer

if TYPE_CHECKING:
    import httpx

# How often the container's state is looked at while waiting between attempts.
STATE_POLL = 0.5
# With check type "none": how long past the start period the container must stay up.
SETTLE = 1.0
LAST_LOG_LINES = 20
# The wait after the first failed probe; it doubles after each failure up to the check's interval.
FIRST_BACKOFF = 0.05
# Printable ASCII but the space stays as it is in a request target; everything else is percent-encoded.
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))

log = logging.getLogger(__name__)

LineSink = Callable[[str], Awaitable[None] | None]


class _Exited(Exception):
    pass


def backoff(interval: float) -> list[float]:
    """The quick waits before the interval is reached: 0.05, 0.1, 0.2... while below ``interval``."""
    waits = []
    wait = FIRST_BACKOFF
    while wait < interval:
        waits.append(wait)
        wait *= 2
    return waits


async def wait_healthy(
    engine: Engine,
    container: RunningContainer,
    check: HealthCheck,
    port: int | None,
    on_line: LineSink,
    cancel: asyncio.Event | None = None,
) -> None:
    """Return once ``container`` passes ``check``; raise ``HealthCheckFailed`` with the last error otherwise.

    Waits ``check.start_period``, then tries up to ``check.retries`` times, ``check.interval`` apart, logging
    one line per attempt through ``on_line``.
    """
    waiter = _Waiter(engine, container, check, port, on_line, cancel)
    try:
        await waiter.run()
    except _Exited as exited:
        raise HealthCheckFailed(str(exited)) from None


class _Waiter:
    def __init__(
        self,
        engine: Engine,
        container: RunningContainer,
        check: HealthCheck,
        port: int | None,
        on_line: LineSink,
        cancel: asyncio.Event | None,
    ) -> None:
        self.engine = engine
        self.container = container
        self.check = check
        self.port = port
        self.on_line = on_line
        self.cancel = cancel or asyncio.Event()
        self.ip = container.ip

    async def run(self) -> None:
        check = self.check
        if check.type in ("http", "tcp") and not self.port:
            raise InvalidInput(
                f"a {check.type} health check needs the port the app listens on: set the app's port, "
                "or choose the health check type none",
                field="port",
            )
        if check.start_period > 0:
            await self.say(f"health check: waiting {check.start_period:g}s start period")
            await self.pause(check.start_period)
        if check.type == "none":
            await self.pause(SETTLE)
            await self.state()
            await self.say("health check: container is running")
            return
        if check.type == "docker":
            await self.docker_health()
            return
        if self.ip is None:
            await self.refresh_ip()
        quick = backoff(check.interval)
        attempts = max(check.retries, 1) + len(quick)
        last_error = "no attempt was made"
        client = _http_client(check.timeout) if check.type == "http" else None
        try:
            for attempt in range(1, attempts + 1):
                await self.state()
                ok, outcome = await (self.http(client) if client is not None else self.tcp())
                await self.say(f"health check {attempt}/{attempts}: {self.target()} -> {outcome}")
                if ok:
                    return
                last_error = outcome
                if attempt < attempts:
                    await self.pause(quick[attempt - 1] if attempt <= len(quick) else check.interval)
        finally:
            if client is not None:
                await client.aclose()
        raise HealthCheckFailed(
            f"container {self.container.name} failed its health check after {attempts} attempts: "
            f"{self.target()} -> {last_error}. Check that the app listens on 0.0.0.0:{self.port}"
            + (f" and answers {check.path}" if check.type == "http" else "")
            + ", or raise the start period or retries"
        )

    # -------------------------------------------------------------------------------------- attempts

    def target(self) -> str:
        if self.check.type == "http":
            return f"GET {self.check.path}"
        return f"TCP {self.ip}:{self.port}"

    async def http(self, client: httpx.AsyncClient) -> tuple[bool, str]:
        import httpx

        path = self.check.path if self.check.path.startswith("/") else "/" + self.check.path
        try:
            async with asyncio.timeout(self.check.timeout):
                status = await http_status(client, self.ip or "", self.port or 0, path)
        except (TimeoutError, httpx.TimeoutException):
            return False, f"no answer within {self.check.timeout:g}s"
        except (OSError, httpx.HTTPError) as error:
            return False, _describe(error)
        return 200 <= status < 400, str(status)

    async def tcp(self) -> tuple[bool, str]:
        try:
            async with asyncio.timeout(self.check.timeout):
                _, writer = await asyncio.open_connection(self.ip, self.port)
        except TimeoutError:
            return False, f"no answer within {self.check.timeout:g}s"
        except OSError as error:
            return False, _describe(error)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True, "connected"

    async def docker_health(self) -> None:
        """Follow the image's own HEALTHCHECK until Docker calls the container healthy or unhealthy."""
        info = await self.state()
        health = (info.get("State") or {}).get("Health")
        config = (info.get("Config") or {}).get("Healthcheck") or {}
        if not health or config.get("Test") in (None, [], ["NONE"]):
            raise HealthCheckFailed(
                f"image {info.get('Config', {}).get('Image', '')} has no HEALTHCHECK: add one to its Dockerfile, "
                "or choose the http, tcp or none health check"
            )
        # Docker's own schedule may be slower than ours (its default interval is 30 s): give it the time it
        # needs to reach a verdict.
        own = _seconds(config.get("StartPeriod")) + (int(config.get("Retries") or 3) + 1) * (
            _seconds(config.get("Interval"), 30.0) + _seconds(config.get("Timeout"), 30.0)
        )
        interval = max(self.check.interval, 0.1)
        quick = backoff(interval)
        attempts = max(self.check.retries, math.ceil(own / interval), 1) + len(quick)
        status = "starting"
        for attempt in range(1, attempts + 1):
            info = await self.state()
            health = (info.get("State") or {}).get("Health") or {}
            status = health.get("Status", "none")
            await self.say(f"health check {attempt}/{attempts}: docker HEALTHCHECK -> {status}")
            if status == "healthy":
                return
            if status == "unhealthy":
                break
            if attempt < attempts:
                await self.pause(quick[attempt - 1] if attempt <= len(quick) else interval)
        probes = (health.get("Log") or [])[-1:] if isinstance(health, dict) else []
        output = f": {probes[0].get('Output', '').strip()}" if probes else ""
        raise HealthCheckFailed(
            f"container {self.container.name} is {status} by its HEALTHCHECK{output}. "
            "Fix the app or the HEALTHCHECK command, or give it a longer start period"
        )

    # -------------------------------------------------------------------------------------- waiting

    async def say(self, line: str) -> None:
        result = self.on_line(line)
        if pyinspect.isawaitable(result):
            await result

    async def pause(self, seconds: float) -> None:
        """Sleep, but fail at once if the container exits or the wait is cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            if self.cancel.is_set():
                raise HealthCheckCancelled("the health check was cancelled")
            await self.state()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(STATE_POLL, remaining)):
                    await self.cancel.wait()

    async def state(self) -> dict[str, Any]:
        """The container's inspect data; raises ``_Exited`` (with its last lines) if it is not running."""
        if self.cancel.is_set():
            raise HealthCheckCancelled("the health check was cancelled")
        info = await self.engine.inspect(self.container.name)
        if info is None:
            raise _Exited(f"container {self.container.name} disappeared during the health check")
        state = info.get("State") or {}
        restarts = int(info.get("RestartCount") or 0)
        if state.get("Running") and not state.get("Restarting") and restarts == 0:
            return info
        code = state.get("ExitCode")
        how = "was restarted after exiting" if restarts and state.get("Running") else "exited"
        tail = await self.last_lines()
        detail = f"\n--- last {LAST_LOG_LINES} log lines ---\n{tail}" if tail else " (it wrote no output)"
        raise _Exited(
            f"container {self.container.name} {how} with code {code} during the health check"
            + (f" ({state['Error']})" if state.get("Error") else "")
            + (" (out of memory: raise its memory limit)" if state.get("OOMKilled") else "")
            + detail
        )

    async def last_lines(self) -> str:
        lines: list[str] = []
        try:
            async for line in self.engine.logs(self.container.name, follow=False, tail=LAST_LOG_LINES):
                lines.append(line.text)
        except MistError as err:
            # The health check's own failure is what is reported; its last lines are a help, so say why they
            # are missing.
            log.warning("could not read the last lines of %s: %s", self.container.name, err.message)
            lines.append(f"(its last lines could not be read: {err.message})")
        return "\n".join(lines[-LAST_LOG_LINES:])

    async def refresh_ip(self) -> None:
        info = await self.state()
        networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
        for network in networks.values():
            if network.get("IPAddress"):
                self.ip = network["IPAddress"]
                return
        raise HealthCheckFailed(
            f"container {self.container.name} has no IP address to check: attach it to a bridge network"
        )


def _http_client(timeout: float) -> httpx.AsyncClient:
    """A client for one container's checks: plain HTTP, no proxy from the environment, redirects not
    followed (a 3xx passes), a new connection per probe."""
    import httpx

    return httpx.AsyncClient(
        # Plain HTTP only: without this, every client would load the system's CA bundle for nothing.
        verify=False,
        trust_env=False,
        follow_redirects=False,
        timeout=timeout,
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"User-Agent": "mist-health-check"},
    )


async def http_status(client: httpx.AsyncClient, host: str, port: int, path: str) -> int:
    """The status code of ``GET path`` on ``host:port``; the body is not read. Informational (1xx) answers
    are skipped by httpx; what is not HTTP raises ``httpx.HTTPError``."""
    target = quote(path.split("#", 1)[0], safe=_TARGET_SAFE)
    authority = f"[{host}]" if ":" in host else host
    async with client.stream("GET", f"http://{authority}:{port}{target}") as response:
        return response.status_code


def _seconds(nanoseconds: Any, default: float = 0.0) -> float:
    return int(nanoseconds) / 1e9 if nanoseconds else default


def _describe(error: BaseException) -> str:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    text = str(error)
    if "refused" in text.lower():
        return "connection refused"
    return text or type(error).__name__
