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
        # Every error class is known by its code, so RemoteMist raises the same class the daemon raised.
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


# raised by builds.runner
class BuildFailed(MistError):
    """The image build did not succeed; the message ends with the last lines of its output."""

    code = "build_failed"
    status = 422


# raised by builds.runner
class BuildCancelled(MistError):
    """The build was stopped on request before it finished."""

    code = "build_cancelled"
    status = 409


# raised by secrets
class SecretError(MistError):
    code = "secret_error"
    status = 500


# raised by providers
class ProviderError(MistError):
    """A git provider refused a request, answered something unexpected, or could not be reached."""

    code: ClassVar[str] = "provider_error"
    status: ClassVar[int] = 502


# raised by engine.health
class HealthCheckFailed(MistError):
    code = "health_check_failed"
    status = 422


# raised by engine.health
class HealthCheckCancelled(HealthCheckFailed):
    """The wait was given up because the deployment was cancelled."""

    code = "health_check_cancelled"
    status = 409


# raised by sources.git
class FetchFailed(MistError):
    """git could not get the requested commit: repository not found or not reachable, ref not found,
    authentication refused, or the fetch timed out."""

    code: ClassVar[str] = "fetch_failed"
    status: ClassVar[int] = 422


# raised by datadir
class DataDirUnsafe(MistError):
    code = "data_dir_unsafe"
    status = 500


# raised by webhooks
class WebhookRefused(MistError):
    """A delivery that does not prove it comes from the provider: no signature, a wrong one, a wrong token."""

    code: ClassVar[str] = "webhook_refused"
    status: ClassVar[int] = 401

    def __init__(self, reason: str, **extra: Any) -> None:
        super().__init__(reason, **extra)
        self.reason = reason


# raised by proxy.caddy
class ProxyError(MistError):
    """The proxy refused the configuration or could not be reached."""

    code = "proxy_error"
    status = 502


# raised by tls.acme_client
class AcmeError(MistError):
    """The ACME server refused or failed an order; the message carries its problem detail."""

    code = "acme_error"
    status = 502


ERRORS_BY_CODE[MistError.code] = MistError


def error_from_problem(body: dict[str, Any]) -> MistError:
    """Rebuild the error a daemon reported, so remote callers catch the same classes as local ones.

    Every error class is defined in this module, so every code is known without importing anything else.
    """
    code = str(body.get("code"))
    cls = ERRORS_BY_CODE.get(code, MistError)
    raw = body.get("extra")
    extra: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return cls(
        str(body.get("detail") or body.get("title") or "unknown error"), field=body.get("field"), **extra
    )
