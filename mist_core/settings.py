"""The instance settings an admin can change at run time (``mist settings set KEY VALUE``): each with a
default, a description and a parser that says what a good value looks like."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import validate
from .errors import InvalidInput


@dataclass(frozen=True)
class SettingDef:
    key: str
    default: str
    description: str
    parse: Callable[[str], object]


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise InvalidInput(f"{value!r} is not a whole number") from None
        if not low <= number <= high:
            raise InvalidInput(f"{number} is out of range: use {low} to {high}")
        return number

    return parse


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise InvalidInput(f"{value!r} is not one of: {', '.join(choices)}")
        return value

    return parse


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise InvalidInput(f"{value!r} is not an http(s) URL")
    return value


def _listen_address(value: str) -> str:
    validate.listen_address(value)
    return value


def _image_reference(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-zA-Z0-9._/:@-]{0,254}", value):
        raise InvalidInput(f"{value!r} is not an image reference: write name[:tag] or name@sha256:digest")
    return value


def _optional_path(value: str) -> str:
    if value and (not value.startswith("/") or "\x00" in value):
        raise InvalidInput(f"{value!r} is not an absolute path")
    return value


def _optional_email(value: str) -> str:
    if value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise InvalidInput(f"{value!r} is not an email address")
    return value


def _optional_public_url(value: str) -> str:
    value = value.rstrip("/")
    parts = urlsplit(value)
    if value and (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username
        or parts.query
        or parts.fragment
        or any(c.isspace() for c in value)
    ):
        raise InvalidInput(f"{value!r} is not an http(s) address like https://mist.example.com")
    return value


def _optional_upstream(value: str) -> str:
    return validate.upstream(value, "hooks_upstream") if value else value


DEFINITIONS: dict[str, SettingDef] = {
    d.key: d
    for d in (
        SettingDef(
            "images_per_app",
            "3",
            "How many of an app's images to keep (the live one included).",
            _int_between(1, 100),
        ),
        SettingDef(
            "deploy_timeout",
            "1800",
            "Seconds a deployment may take before it fails.",
            _int_between(10, 86400),
        ),
        SettingDef(
            "deploy_attempts",
            "3",
            "Attempts for a deployment when the Docker Engine fails transiently.",
            _int_between(1, 10),
        ),
        SettingDef(
            "stop_grace_period",
            "10",
            "Seconds an old container gets after SIGTERM before SIGKILL.",
            _int_between(0, 3600),
        ),
        SettingDef(
            "database_health_wait",
            "120",
            "Seconds Mist waits for a database it starts to pass its health check before it answers.",
            _int_between(1, 3600),
        ),
        SettingDef(
            "log_retention_deployments",
            "50",
            "Deployments per app whose logs are kept.",
            _int_between(1, 10000),
        ),
        # The proxy, domains and certificates.
        SettingDef(
            "proxy_backend",
            "traefik",
            "Which proxy routes domains to apps: traefik or caddy.",
            _one_of("traefik", "caddy"),
        ),
        SettingDef(
            "caddy_admin_url",
            "http://127.0.0.1:2019",
            "Caddy's admin API, when proxy_backend is caddy.",
            _http_url,
        ),
        SettingDef(
            "proxy_http_address", ":80", "Where the proxy listens for HTTP ([host]:port).", _listen_address
        ),
        SettingDef(
            "proxy_https_address", ":443", "Where the proxy listens for HTTPS ([host]:port).", _listen_address
        ),
        SettingDef(
            "acme_directory_url",
            "https://acme-v02.api.letsencrypt.org/directory",
            "The ACME server's directory (Let's Encrypt production by default).",
            _http_url,
        ),
        SettingDef(
            "acme_ca_bundle",
            "",
            "A CA bundle (PEM file path) to trust for a private ACME server; empty: the system's.",
            _optional_path,
        ),
        SettingDef("acme_email", "", "The ACME account's contact email; empty: none.", _optional_email),
        SettingDef(
            "acme_challenge_address",
            "127.0.0.1:8089",
            "Where Mist answers ACME HTTP-01 challenges; the proxy sends /.well-known/acme-challenge/ there.",
            _listen_address,
        ),
        SettingDef(
            "drain_seconds",
            "1",
            "Seconds the old container keeps serving requests already sent to it after the route moved.",
            _int_between(0, 600),
        ),
        SettingDef(
            "cert_renewal_days", "30", "Days before expiry a certificate is renewed.", _int_between(1, 89)
        ),
        SettingDef(
            "public_url",
            "",
            "The address git hosts and browsers reach Mist at (https://mist.example.com): webhook URLs and the "
            "GitHub App flow are built on it; empty: webhooks are not offered.",
            _optional_public_url,
        ),
        SettingDef(
            "hooks_upstream",
            "",
            "host:port where the proxy reaches the daemon's hooks listener (mistd --hooks-listen); with "
            "public_url set, the proxy routes <public_url>/hooks/ there. Empty: no such route.",
            _optional_upstream,
        ),
        SettingDef(
            "require_2fa",
            "false",
            "Whether every account must use two-factor authentication; until they enable it, accounts "
            "without it may only set it up.",
            _one_of("true", "false"),
        ),
        # Backups.
        SettingDef(
            "backup_volume_image",
            "busybox:1.36",
            "The image whose tar dumps and restores volumes (it needs tar and sh); it must be on the Docker "
            "server.",
            _image_reference,
        ),
    )
}


def parse(key: str, value: str) -> object:
    definition = DEFINITIONS.get(key)
    if definition is None:
        known = ", ".join(sorted(DEFINITIONS))
        raise InvalidInput(f"there is no setting {key!r}; the settings are: {known}", field="key")
    try:
        return definition.parse(value)
    except InvalidInput as err:
        raise InvalidInput(f"setting {key}: {err.message}", field="value") from None
