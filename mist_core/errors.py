"""The errors Mist raises to its callers.

Every error has a stable machine ``code`` (used in the API's problem+json bodies and by ``RemoteMist`` to
raise the same class again on the client side), an HTTP ``status``, and a human message that says what was
wrong and, where it can, what to do.
"""

from __future__ import annotations

from typing import Any, ClassVar

ERRORS_BY_CODE: dict[str, type[MistError]] = {}


class MistError(Exception):
    """Base of every error a Mist API call can raise."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every error class, wherever it is defined (builds, sources, engine...), is known by its code, so
        # RemoteMist raises the same class the daemon raised.
        super().__init_subclass__(**kwargs)
        ERRORS_BY_CODE[cls.code] = cls

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        """The ``application/problem+json`` body for this error."""
        body: dict[str, Any] = {
            "type": f"https://mist.dev/problems/{self.code}",
            "title": self.code.replace("_", " "),
            "status": self.status,
            "code": self.code,
            "detail": self.message,
        }
        if self.field:
            body["field"] = self.field
        if self.extra:
            body["extra"] = self.extra
        return body


class InvalidInput(MistError):
    """A value given by the user is malformed or not allowed (names, URLs, refs, ports, ...)."""

    code = "invalid_input"
    status = 422


class NotFound(MistError):
    code = "not_found"
    status = 404


class Conflict(MistError):
    """The request clashes with the current state (a name taken, a project that still has apps...)."""

    code = "conflict"
    status = 409


class Unauthenticated(MistError):
    """No valid credentials: log in (again)."""

    code = "unauthenticated"
    status = 401


class TokenExpired(Unauthenticated):
    """The access token's time is up: get a new one with the refresh token (clients do this by themselves)."""

    code = "token_expired"


class TotpRequired(Unauthenticated):
    """The password was right and the account has two-factor authentication: send the code too."""

    code = "totp_required"


class PermissionDenied(MistError):
    """The caller is known but their role (or their token's scope) does not allow this."""

    code = "permission_denied"
    status = 403


class TooManyAttempts(MistError):
    """Too many failed logins (for the account or from the address), or requests too fast: wait and retry.
    ``extra["retry_after"]`` is the number of seconds to wait."""

    code = "too_many_attempts"
    status = 429


class SetupRequired(MistError):
    """No account exists yet: run ``mist setup`` first."""

    code = "setup_required"
    status = 409


class EngineUnavailable(MistError):
    """The Docker Engine does not answer."""

    code = "engine_unavailable"
    status = 503


class DaemonUnavailable(MistError):
    """The Mist daemon cannot be reached (client side only)."""

    code = "daemon_unavailable"
    status = 503


ERRORS_BY_CODE[MistError.code] = MistError


def error_from_problem(body: dict[str, Any]) -> MistError:
    """Rebuild the error a daemon reported, so remote callers catch the same classes as local ones.

    Modules that define their own error classes register them on import; the client imports them all.
    """
    code = str(body.get("code"))
    if code not in ERRORS_BY_CODE:
        _import_error_modules()
    cls = ERRORS_BY_CODE.get(code, MistError)
    raw = body.get("extra")
    extra: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return cls(
        str(body.get("detail") or body.get("title") or "unknown error"), field=body.get("field"), **extra
    )


def _import_error_modules() -> None:
    """Import the modules that define error classes of their own, which registers them."""
    import importlib

    for module in (
        "mist_core.builds.runner",
        "mist_core.sources.git",
        "mist_core.engine.health",
        "mist_core.secrets",
        "mist_core.proxy.caddy",
        "mist_core.tls.acme_client",
        "mist_core.providers",
        "mist_core.webhooks",
    ):
        importlib.import_module(module)
