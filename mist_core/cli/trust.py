"""Trust on first use for a daemon on ``https://``: whether its certificate verifies (against the system's
trust store or a pinned PEM), and whether a fingerprint the user typed is the one the daemon shows."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from urllib.parse import urlsplit

from ..errors import DaemonUnavailable, InvalidInput

_HEX = re.compile(r"^[0-9a-f]+$")


def host_and_port(host: str) -> tuple[str, int]:
    url = urlsplit(host)
    if url.scheme != "https" or not url.hostname:
        raise InvalidInput(f"{host!r} is not an https:// address: give https://host:port", field="host")
    try:
        port = url.port or 443
    except ValueError:
        raise InvalidInput(f"{host!r} has no valid port: give https://host:port", field="host") from None
    return url.hostname, port


async def certificate_verifies(host: str, pinned_pem: str | None = None, *, timeout: float = 10) -> bool:
    """Whether a TLS handshake with ``host`` succeeds, checking its certificate against ``pinned_pem`` when
    given, else against the system's trust store. Refusals other than the certificate's (nothing listens,
    not TLS at all) raise ``DaemonUnavailable``."""
    from ..client import pinned_context

    hostname, port = host_and_port(host)
    # A pin trusts exactly that certificate, whatever name the daemon is reached by (as RemoteMist does).
    context = pinned_context(pinned_pem) if pinned_pem else ssl.create_default_context()
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(hostname, port, ssl=context, server_hostname=hostname), timeout
        )
    except ssl.SSLCertVerificationError:
        return False
    except (OSError, TimeoutError) as err:
        raise DaemonUnavailable(
            f"cannot reach the Mist daemon at {host}: is it running and listening there? ({err})"
        ) from None
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True


def normalize_fingerprint(text: str) -> str:
    """``SHA256:AB:CD:...``, ``ab cd ...`` and ``sha256:abcd...`` compare equal; a base64 fingerprint (as
    SSH prints them) keeps its case."""
    value = text.strip()
    if value.lower().startswith("sha256:"):
        value = value[len("sha256:") :]
    compact = re.sub(r"[\s:]", "", value)
    return compact.lower() if _HEX.match(compact.lower()) else compact.rstrip("=")


def fingerprints_match(given: str, actual: str) -> bool:
    return bool(given.strip()) and normalize_fingerprint(given) == normalize_fingerprint(actual)
