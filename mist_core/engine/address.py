"""Where a Docker Engine listens, as Mist accepts it: ``unix:///path``, ``tcp://host:port``,
``http(s)://host:port`` or ``ssh://[user@]host[:port]``, checked before anything connects to it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_SSH_USER = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]{0,63}")
_SSH_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]+\]")


@dataclass(frozen=True)
class EngineAddress:
    """Where the engine listens, checked: ``kind`` is unix, tcp (plain or TLS) or ssh."""

    url: str
    kind: str
    ssh_user: str | None = None
    ssh_host: str | None = None
    ssh_port: int | None = None


def parse_engine_address(url: str) -> EngineAddress:
    """``unix:///path``, ``tcp://host:port``, ``http(s)://host:port`` or ``ssh://[user@]host[:port]``.
    Raises ``ValueError`` saying what is wrong."""
    if url.startswith("unix://"):
        if not url[len("unix://") :].startswith("/"):
            raise ValueError(
                "a Unix socket address needs an absolute path, as in unix:///var/run/docker.sock"
            )
        return EngineAddress(url=url, kind="unix")
    parts = urlsplit(url)
    if parts.scheme not in ("tcp", "http", "https", "ssh"):
        raise ValueError(
            f"the scheme {parts.scheme or '(none)'!r} is not one Mist speaks (unix, tcp, http, https, ssh)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("a TCP or ssh address is only host:port, with no path")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port is not a number between 0 and 65535") from None
    if not parts.hostname:
        raise ValueError("the address names no host")
    if parts.scheme != "ssh":
        if parts.username is not None:
            raise ValueError("a TCP address carries no user name")
        return EngineAddress(url=url, kind="tcp")
    host = parts.netloc.rpartition("@")[2]
    host = host.rsplit(":", 1)[0] if port is not None else host
    if not _SSH_HOST.fullmatch(host) or host.startswith("-"):
        raise ValueError(f"{host!r} is not a host name or address")
    if parts.username is not None and not _SSH_USER.fullmatch(parts.username):
        raise ValueError(f"{parts.username!r} is not a user name")
    if parts.password is not None:
        raise ValueError("an ssh address carries no password: use a key (ssh-agent or the ssh config)")
    return EngineAddress(url=url, kind="ssh", ssh_user=parts.username, ssh_host=host, ssh_port=port)
