"""``RemoteMist``: the Mist API over HTTP to a daemon, on its Unix socket (``unix:///run/mist/mist.sock``) or
over TCP (``https://host:port``). Same methods, same models and same error classes as ``LocalMist``.

Also here: pinning a daemon's self-signed certificate (``RemoteMist(..., certificate=PEM)``) and
``fetch_certificate`` to show a user what a daemon presents before they choose to trust it."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import ipaddress
import json
import os
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, TypeAdapter

from .api import MistAPI
from .errors import DaemonUnavailable, InvalidInput, MistError, error_from_problem
from .models import Session
from .operations import Operation, operation, parts
from .wire import Client, ConnectFailed, ProtocolFailed, Response, TimedOut

M = TypeVar("M", bound=BaseModel)

# Called with the new session after an expired access token was renewed, so the caller can save the pair
# (a coroutine function works too).
OnSession = Callable[[Session], Awaitable[None] | None]

FETCH_TIMEOUT = 10.0


class CertificateMismatch(DaemonUnavailable):
    """The daemon presented a certificate other than the one pinned for it: either it was replaced (log in
    again to pin the new one) or something sits between the client and the daemon."""

    code = "certificate_mismatch"


# ---------------------------------------------------------------------------------------------- certificates


def certificate_fingerprint(pem: str) -> str:
    """``SHA256:aa:bb:...``: the SHA-256 of a certificate's DER, as the daemon prints it at start."""
    # The first certificate of a chain is the daemon's own.
    found = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.DOTALL)
    try:
        if found is None:
            raise ValueError
        der = ssl.PEM_cert_to_DER_cert(found.group(0) + "\n")
    except ValueError:
        raise InvalidInput("the certificate is not a PEM certificate", field="certificate") from None
    return _fingerprint_of_der(der)


def _fingerprint_of_der(der: bytes) -> str:
    return "SHA256:" + ":".join(f"{b:02x}" for b in hashlib.sha256(der).digest())


def _https_address(host: str) -> tuple[str, int]:
    url = urlsplit(host)
    if url.scheme != "https" or not url.hostname:
        raise InvalidInput(f"{host!r} is not an https:// address: give https://host:port", field="host")
    try:
        return url.hostname, url.port or 443
    except ValueError:
        raise InvalidInput(f"{host!r} has no valid port: give https://host:port", field="host") from None


def fetch_certificate(host: str, *, timeout: float = FETCH_TIMEOUT) -> tuple[str, str]:
    """The certificate ``host`` (``https://host:port``) presents, as ``(PEM, "SHA256:aa:bb:...")``.

    Nothing is verified: this is only for showing the fingerprint to the user on first use, who compares it
    with the one the daemon printed at start before pinning the PEM (``RemoteMist(..., certificate=PEM)``).
    No request is sent, so no token can leak to whoever answers. Blocking; call it in a thread from async code.
    """
    hostname, port = _https_address(host)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((hostname, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=hostname) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise DaemonUnavailable(
            f"cannot read the certificate of {host}: is a Mist daemon listening there with TLS? ({exc})"
        ) from None
    if not der:
        raise DaemonUnavailable(f"{host} presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der), _fingerprint_of_der(der)


def pinned_context(certificate: str) -> ssl.SSLContext:
    """A TLS context that trusts exactly ``certificate`` (a PEM), whatever name the daemon is reached by:
    the pin replaces both the CA chain and the host name check."""
    certificate_fingerprint(certificate)  # a clear error for something that is not a PEM certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cadata=certificate)
    except ssl.SSLError as exc:
        raise InvalidInput(f"the pinned certificate cannot be loaded: {exc}", field="certificate") from None
    return context


def _is_certificate_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _tls_context(verify: ssl.SSLContext | str | bool) -> ssl.SSLContext:
    """The TLS context for ``RemoteMist(verify=...)``."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if verify is True:
        return ssl.create_default_context()
    try:
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidInput(f"cannot load the CA bundle {verify}: {exc}", field="verify") from None


def _loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _seg(value: str) -> str:
    """One path segment, escaped so a name can never reach another route."""
    if value in (".", ".."):
        # A client or proxy may remove dot segments from a path: `.../domains/..` would become a DELETE of the
        # app itself.
        return value.replace(".", "%2E")
    return quote(value, safe="")


def _app_parts(app_ref: str, what: str = "app") -> tuple[str, str]:
    project, sep, app = app_ref.partition("/")
    if not sep or not project or not app or "/" in app:
        if what != "app":
            # The words of the core's own refusal (``validate.db_ref``).
            raise InvalidInput(
                f"{what} {app_ref!r} is not 'project/name': name the project, then the {what} (e.g. shop/db)",
                field=what,
            )
        raise InvalidInput(
            f"an app is named 'project/app', not {app_ref!r}: give the project and the app, e.g. 'shop/web'",
            field="app",
        )
    return project, app


def _params(**values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, datetime):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


class _Transport:
    """The HTTP side of ``RemoteMist``: one ``wire.Client``, the tokens, renewal of an expired access
    token, and the error mapping."""

    def __init__(
        self,
        host: str,
        token: str | None,
        timeout: float,
        verify: ssl.SSLContext | str | bool,
        *,
        refresh_token: str | None = None,
        on_session: OnSession | None = None,
        certificate: str | None = None,
    ):
        self.host = host
        self.token = token
        self.refresh_token = refresh_token
        self.on_session = on_session
        self.certificate = certificate
        self.verify = verify
        # One renewal at a time: two calls that both see the token expire must not both spend the refresh
        # token, since presenting a used one revokes the session.
        self._renewing = asyncio.Lock()
        # Streams stay open for as long as the caller reads them and the daemon sends (a heartbeat at least
        # every 15 s); every wait for the daemon's bytes is bounded by `timeout`, connecting by at most 10 s.
        connect_timeout = min(timeout, 10.0)
        headers = {"User-Agent": "mist-client"}
        if host.startswith("unix://"):
            path = host[len("unix://") :]
            if not path:
                raise InvalidInput(
                    "a unix host needs a socket path: unix:///run/mist/mist.sock", field="host"
                )
            self.client = Client(
                uds=path,
                authority="mist",
                headers=headers,
                timeout=timeout,
                connect_timeout=connect_timeout,
            )
        elif host.startswith(("https://", "http://")):
            url = urlsplit(host)
            hostname = url.hostname or ""
            if host.startswith("http://") and not _loopback(hostname):
                raise InvalidInput(
                    f"refusing plain http:// to {hostname or host}: tokens would cross the network in clear; "
                    "use https://host:port",
                    field="host",
                )
            try:
                port = url.port or (443 if url.scheme == "https" else 80)
            except ValueError:
                raise InvalidInput(
                    f"{host!r} has no valid port: give https://host:port", field="host"
                ) from None
            if not hostname:
                raise InvalidInput(f"{host!r} names no host: give https://host:port", field="host")
            tls = None
            if url.scheme == "https":
                tls = pinned_context(certificate) if certificate is not None else _tls_context(verify)
            self.client = Client(
                host=hostname,
                port=port,
                tls=tls,
                authority=url.netloc,
                headers=headers,
                timeout=timeout,
                connect_timeout=connect_timeout,
            )
        else:
            raise InvalidInput(
                f"cannot use {host!r} as a Mist host: give unix:///path/to/mist.sock or https://host:port",
                field="host",
            )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of this daemon's connections, for a connection of its own (exec)."""
        return self.client.tls

    def _headers(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def unavailable(self, exc: Exception) -> DaemonUnavailable:
        if _is_certificate_error(exc):
            return await self._untrusted()
        return DaemonUnavailable(
            f"cannot reach the Mist daemon at {self.host}: start it with `mist daemon` (or `make run`)"
            f" ({type(exc).__name__})"
        )

    async def _untrusted(self) -> DaemonUnavailable:
        try:
            _, presented = await asyncio.to_thread(fetch_certificate, self.host)
        except MistError:
            presented = "unknown"
        if self.certificate is not None:
            pinned = certificate_fingerprint(self.certificate)
            return CertificateMismatch(
                f"the daemon at {self.host} presented the certificate {presented}, not the one pinned for it "
                f"({pinned}). If its certificate was replaced on purpose, log in again to pin the new one "
                "(`mist login --host ...`); otherwise do not connect: someone may be intercepting the traffic"
            )
        return DaemonUnavailable(
            f"the certificate of the daemon at {self.host} ({presented}) is not trusted by this machine: "
            "if it is the self-signed one the daemon printed at start, log in with `mist login --host` "
            "to pin it (or pass certificate=PEM)"
        )

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        token: str | None,
        *,
        stream: bool = False,
    ) -> Response:
        try:
            return await self.client.send(
                method, path, params=params, json_body=json_body, headers=self._headers(token), stream=stream
            )
        except (ConnectFailed, ProtocolFailed) as exc:
            raise await self.unavailable(exc) from exc
        except TimedOut as exc:
            raise DaemonUnavailable(
                f"the Mist daemon at {self.host} did not answer in time; check that it is running"
            ) from exc
        except ValueError:  # a line break in a header: only the token comes from outside
            raise InvalidInput("the token holds a line break: give the token alone", field="token") from None

    async def _send_renewing(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        *,
        stream: bool = False,
        authenticated: bool = True,
    ) -> Response:
        """Send; when the access token has expired and a refresh token is at hand, renew and send once more."""
        token = self.token if authenticated else None
        response = await self._send(method, path, params, json_body, token, stream=stream)
        if token is None or response.status_code != 401:
            return response
        await response.aread()
        if _code_of(response) != "token_expired" or not await self._renew(token):
            return response
        await response.aclose()
        return await self._send(method, path, params, json_body, self.token, stream=stream)

    async def _renew(self, expired: str) -> bool:
        async with self._renewing:
            if self.token != expired:
                return True  # another call renewed it while this one waited
            if not self.refresh_token:
                return False
            response = await self._send(
                "POST", "/v1/refresh", None, {"refresh_token": self.refresh_token}, None
            )
            if response.status_code >= 400:
                # The session ended (revoked, logged out, or the refresh token expired): say so, not "expired".
                raise _error_of(response)
            session = Session.model_validate_json(response.content)
            self.keep(session)
        if self.on_session is not None:
            outcome = self.on_session(session)
            if inspect.isawaitable(outcome):
                await outcome
        return True

    def keep(self, session: Session) -> None:
        """Use ``session``'s tokens from now on."""
        self.token = session.token
        self.refresh_token = session.refresh_token

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        authenticated: bool = True,
    ) -> Response:
        response = await self._send_renewing(method, path, params, json_body, authenticated=authenticated)
        if response.status_code >= 400:
            raise _error_of(response)
        return response

    async def stream(self, model: type[M], path: str, params: Mapping[str, Any]) -> AsyncIterator[M]:
        """Parse an SSE stream into models. Closing the generator closes the response. An expired access
        token is renewed before the stream starts."""
        response = await self._send_renewing("GET", path, params, None, stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
                raise _error_of(response)
            event = "message"
            data: list[str] = []
            async for line in _lines(response):
                if line == "":
                    if data:
                        payload = "\n".join(data)
                        if event == "error":
                            raise _error_of_problem(json.loads(payload))
                        yield model.model_validate_json(payload)
                    event, data = "message", []
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        data.append(value)
                    elif name == "event":
                        event = value
        except ProtocolFailed as exc:
            raise DaemonUnavailable(
                f"the Mist daemon at {self.host} closed the stream (was it stopped?)"
            ) from exc
        except TimedOut as exc:
            raise DaemonUnavailable(
                f"the Mist daemon at {self.host} sent nothing on the stream for too long; check that it is running"
            ) from exc
        finally:
            await response.aclose()

    async def close(self) -> None:
        await self.client.aclose()


async def _lines(response: Response) -> AsyncIterator[str]:
    # SSE frames end in "\n\n": each line is handed on as soon as its bytes are in.
    buffer = ""
    async for chunk in response.aiter_text():
        buffer += chunk
        while True:
            cut = buffer.find("\n")
            if cut < 0:
                break
            line, buffer = buffer[:cut], buffer[cut + 1 :]
            yield line.rstrip("\r")
    if buffer:
        yield buffer


def _problem_of(response: Response) -> dict[str, Any] | None:
    if not response.headers.get("content-type", "").startswith(
        ("application/problem+json", "application/json")
    ):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and "code" in body else None


def _code_of(response: Response) -> str | None:
    problem = _problem_of(response)
    return str(problem["code"]) if problem else None


def _error_of_problem(body: dict[str, Any]) -> MistError:
    error = error_from_problem(body)
    # ``extra`` carries what a caller acts on (``retry_after`` of ``TooManyAttempts``).
    if isinstance(body.get("extra"), dict) and not error.extra:
        error.extra = dict(body["extra"])
    return error


def _error_of(response: Response) -> MistError:
    problem = _problem_of(response)
    if problem is not None:
        return _error_of_problem(problem)
    return MistError(f"the Mist daemon answered {response.status_code} {response.reason_phrase}")


# ---------------------------------------------------------------------------------------------- the calls


class _Call:
    """How ``RemoteMist`` sends one operation of the table: the arguments bound to the interface's signature
    become the path, the query and the JSON body; the answer becomes the annotated result."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        returns = operation.returns
        self.parse: Callable[[Response], Any]
        if operation.stream or operation.duplex or returns is None:
            self.parse = lambda response: None
        elif returns is str:
            self.parse = lambda response: response.text
        elif isinstance(returns, type) and issubclass(returns, BaseModel):
            self.parse = lambda response: returns.model_validate_json(response.content)
        else:
            self.parse = self._parse_with_adapter

    @cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        # Built on first use: a process (one `mist` command) makes one or two kinds of call, not all of them.
        return TypeAdapter(self.operation.returns)

    def _parse_with_adapter(self, response: Response) -> Any:
        return self._adapter.validate_json(response.content)

    def request(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, dict[str, Any], Any]:
        """``(path, query, body)`` for a call with these arguments (``body`` is None without one). A bad
        argument (an app that is not ``project/app``) fails here, before anything is sent."""
        bound = self.operation.signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        segments: dict[str, str] = {}
        query: dict[str, Any] = {}
        body: dict[str, Any] | None = None
        for argument in self.operation.arguments:
            value = bound.arguments[argument.name]
            where = argument.where
            if where in ("app", "project+name"):
                second = argument.wire.split("/")[1]
                project, app = _app_parts(value, second)
                segments["project"] = _seg(project)
                if where == "app":
                    segments[second] = _seg(app)
                else:
                    body = {**(body or {}), "name": app}
            elif where == "path":
                segments[argument.wire] = str(int(value)) if argument.annotation is int else _seg(value)
            elif where == "query":
                if argument.name == "app_ref" and value is not None:
                    # The same refusal of a malformed name as every other call taking an app.
                    _app_parts(value)
                query[argument.wire] = argument.codec.encode(value) if argument.codec else value
            elif where == "body":
                body = {**(body or {}), argument.wire: value}
            elif value is not None:  # a model: the body, or its fields beside the others
                body = {**(body or {}), **value.model_dump(mode="json", exclude_unset=True)}
            elif body is None:
                body = {}
        return "/v1" + self.operation.path.format(**segments), _params(**query), body


class _RemotePart:
    """A part of ``RemoteMist`` (``mist.apps``): its methods are made from the operation table."""

    def __init__(self, transport: _Transport) -> None:
        self._t = transport


def _remote_method(operation: Operation) -> Callable[..., Any]:
    call = _Call(operation)
    method: Callable[..., Any]
    if operation.duplex:

        async def method(self: _RemotePart, /, *args: Any, **kwargs: Any) -> Any:
            path, _, start = call.request(args, kwargs)
            await self._t.request("GET", "/v1/me")  # a refused or expired token fails (or renews) here
            from . import exec_client  # only a command that runs something in a container needs it

            return await exec_client.open_exec(
                self._t.host, path, self._t.token, start or {}, context=self._t.ssl_context()
            )

    elif operation.stream:

        def method(self: _RemotePart, /, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            path, query, _ = call.request(args, kwargs)
            return self._t.stream(operation.returns, path, query)

    else:

        async def method(self: _RemotePart, /, *args: Any, **kwargs: Any) -> Any:
            path, query, body = call.request(args, kwargs)
            response = await self._t.request(
                operation.method, path, params=query, json_body=body, authenticated=not operation.public
            )
            result = call.parse(response)
            if isinstance(result, Session):
                self._t.keep(result)  # setup, login, refresh, accepting an invitation: the new tokens serve
            elif operation.name == "auth.logout":
                self._t.token = self._t.refresh_token = None
            return result

    method.__name__ = operation.attribute
    method.__doc__ = operation.doc
    setattr(method, "__signature__", operation.signature)  # noqa: B010 (mypy refuses the plain assignment)
    return method


class _Lazy:
    """An operation of a remote part, made from its row the first time it is looked up (then it replaces
    itself on the class): a ``mist`` command resolves the one or two operations it calls, not all of them."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, instance: object, owner: type) -> Any:
        if instance is None:
            return self  # the class itself asked (ABCMeta looking for abstract methods): nothing to make yet
        method = _remote_method(operation(self.name))
        method.__qualname__ = f"{owner.__name__}.{method.__name__}"
        setattr(owner, self.attribute, method)
        return method.__get__(instance, owner)


def _remote_parts() -> dict[str, type[_RemotePart]]:
    """One class per part of ``MistAPI``, implementing each of its methods through the table."""
    classes = {}
    for part, interface in parts().items():
        name = f"Remote{interface.__name__}"
        methods = {
            attribute: _Lazy(f"{part}.{attribute}")
            for attribute, value in vars(interface).items()
            if getattr(value, "__isabstractmethod__", False)
        }
        classes[part] = type(name, (_RemotePart, interface), {"__module__": __name__, **methods})
    return classes


_REMOTE_PARTS = _remote_parts()


class RemoteMist(MistAPI):
    """The Mist API of a daemon.

    ``host`` is ``unix:///path/mist.sock`` or ``https://host:port`` (plain ``http://`` only to a loopback
    address). ``setup``/``login``/``refresh``/``invites.accept`` keep the new tokens; ``logout`` drops them.

    With ``refresh_token``, an access token that expires mid-use is renewed by itself (``POST /v1/refresh``)
    and the call retried once; ``on_session`` then gets the new ``Session`` so the caller can save the pair.

    TLS: ``certificate`` (a PEM) pins the daemon's certificate: exactly that one is trusted, whatever the
    host name, and another one fails with ``CertificateMismatch``. Without it, ``verify`` is ``True`` (the
    system's CAs), a CA bundle file or directory, an ``ssl.SSLContext``, or ``False`` (no check at all).
    """

    def __init__(
        self,
        host: str,
        token: str | None = None,
        *,
        refresh_token: str | None = None,
        on_session: OnSession | None = None,
        certificate: str | None = None,
        timeout: float = 30,
        verify: ssl.SSLContext | str | bool = True,
    ) -> None:
        self._t = _Transport(
            host,
            token,
            timeout,
            verify,
            refresh_token=refresh_token,
            on_session=on_session,
            certificate=certificate,
        )
        self.host = host
        for part, remote in _REMOTE_PARTS.items():
            setattr(self, part, remote(self._t))

    @property
    def token(self) -> str | None:
        return self._t.token

    @token.setter
    def token(self, value: str | None) -> None:
        self._t.token = value

    @property
    def refresh_token(self) -> str | None:
        return self._t.refresh_token

    @refresh_token.setter
    def refresh_token(self, value: str | None) -> None:
        self._t.refresh_token = value

    def with_token(self, token: str | None, refresh_token: str | None = None) -> RemoteMist:
        """Use ``token`` (and ``refresh_token``) for every later call (returns ``self`` for chaining)."""
        self._t.token = token
        self._t.refresh_token = refresh_token
        return self

    async def close(self) -> None:
        await self._t.close()
