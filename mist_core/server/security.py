"""Transport hardening for the API, as one ASGI middleware around the app: security headers on every response,
a bound on request bodies, and a token bucket per client address on the endpoints that hand out credentials.

The public ``/hooks/`` routes read their bodies themselves, bounded to what a webhook delivery may weigh
(``mist_core.webhooks.MAX_BODY``), so an oversized delivery is still recorded with the reason it was refused;
their pages may set a Content-Security-Policy of their own (the GitHub App manifest form needs one script and
one form target)."""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROBLEM = "application/problem+json"
MAX_BODY_BYTES = 1024 * 1024

# The endpoints that create a session or a token: guessing passwords, invitation tokens or refresh tokens
# goes through them, so each client address gets a bounded rate there (the core's lockout counts failures;
# this bounds attempts, failed or not).
RATE_LIMITED = frozenset(
    {
        ("POST", "/v1/login"),
        ("POST", "/v1/refresh"),
        ("POST", "/v1/setup"),
        ("POST", "/v1/invites/accept"),
        ("POST", "/v1/tokens"),
    }
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    # Answers carry tokens, secrets and logs: nothing in between may keep a copy.
    (b"cache-control", b"no-store"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000")
CSP = b"content-security-policy"
# Routes that bound their own bodies (webhook deliveries): the middleware hands their body through unread.
SELF_BOUNDED_PREFIX = "/hooks/"
# Exec sessions (the duplex operations: an app's exec, a database's shell): the body streams for as long as the
# session lasts, and the route bounds each of its frames.
STREAMED_BODY = re.compile(r"/v1/projects/[^/]+/(apps/[^/]+/exec|databases/[^/]+/shell)")


def source_of(scope: Scope) -> str:
    """Where a request comes from: the peer's address on TCP, ``"unix"`` on the local socket (which has none)."""
    client = scope.get("client")
    if client and client[0]:
        return str(client[0])
    return "unix"


# ---------------------------------------------------------------------------------------------- rate limit


@dataclass(frozen=True)
class Rate:
    """A token bucket's shape: up to ``burst`` requests at once, then ``per_second`` on average."""

    burst: int = 30
    per_second: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"BURST/PER_SECOND"`` (``"30/1"``, ``"5/0.2"``) or just ``"BURST"`` (refilled one per second)."""
        burst_text, sep, rate_text = text.strip().partition("/")
        try:
            burst = int(burst_text)
            per_second = float(rate_text) if sep else 1.0
        except ValueError:
            raise ValueError(
                f"auth rate {text!r}: give BURST/PER_SECOND, e.g. 30/1 (30 at once, then one a second)"
            ) from None
        if burst < 1 or not per_second > 0 or math.isinf(per_second):
            raise ValueError(f"auth rate {text!r}: the burst must be 1 or more and the rate above 0")
        return cls(burst, per_second)

    @classmethod
    def from_env(cls) -> Rate:
        text = os.environ.get("MIST_AUTH_RATE")
        return cls.parse(text) if text else cls()


class RateLimiter:
    """Token buckets by key. Idle buckets are forgotten first when there are too many, so a flood of addresses
    costs bounded memory (a forgotten bucket comes back full, which is what an idle one would be anyway)."""

    def __init__(
        self, rate: Rate, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[Any, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: Any) -> float:
        """Take one token for ``key``: 0 when allowed, else the seconds until the next token."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (float(self.rate.burst), now))
        tokens = min(float(self.rate.burst), tokens + (now - at) * self.rate.per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate.per_second
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


# ---------------------------------------------------------------------------------------------- middleware


class _BodyTooLarge(Exception):
    pass


def problem_body(code: str, status: int, detail: str, **more: Any) -> bytes:
    body = {
        "type": f"https://mist.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
        **more,
    }
    return json.dumps(body).encode()


class SecurityMiddleware:
    """Plain ASGI (not ``BaseHTTPMiddleware``) so Server-Sent Events stream through untouched."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int = MAX_BODY_BYTES,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.limiter = limiter if limiter is not None else RateLimiter(Rate.from_env())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [HSTS] if scope.get("scheme") == "https" else []
        method, path = scope["method"], scope["path"].rstrip("/") or "/"
        self_bounded = scope["path"].startswith(SELF_BOUNDED_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                ours = list(SECURITY_HEADERS) + extra
                given = message.get("headers", [])
                if self_bounded and any(k.lower() == CSP for k, _ in given):
                    # A /hooks page that names exactly what it needs (the manifest form) keeps its own policy.
                    ours = [(k, v) for k, v in ours if k != CSP]
                names = {name for name, _ in ours}
                headers = [(k, v) for k, v in given if k.lower() not in names]
                message["headers"] = headers + ours
            await send(message)

        if (method, path) in RATE_LIMITED:
            wait = self.limiter.take((source_of(scope), path))
            if wait > 0:
                retry = max(1, math.ceil(wait))
                await _refuse(
                    send_with_headers,
                    429,
                    problem_body(
                        "too_many_attempts",
                        429,
                        f"too many requests to {path} from this address: wait {retry} s and try again",
                        extra={"retry_after": retry},
                    ),
                    [(b"retry-after", str(retry).encode())],
                )
                return

        if self_bounded or (method == "POST" and STREAMED_BODY.fullmatch(scope["path"])):
            await self.app(scope, receive, send_with_headers)
            return

        too_large = problem_body(
            "body_too_large",
            413,
            f"the request body is larger than {self.max_body} bytes: send less (split an import in parts)",
        )
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await _refuse(send_with_headers, 413, too_large)
            return
        try:
            body = await self._read_body(receive)
        except _BodyTooLarge:
            await _refuse(send_with_headers, 413, too_large)
            return
        if body is None:  # the client went away before sending its body
            return

        replayed = False

        async def replay() -> Message:
            # The body once, as read; then the real channel, so a stream still hears the client disconnect.
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, counting as it comes: Content-Length can be absent (chunked) or lie."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM.encode()),
                (b"content-length", str(len(body)).encode()),
                # The rest of an oversized body is not read: the connection cannot carry another request.
                *([(b"connection", b"close")] if status == 413 else []),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
