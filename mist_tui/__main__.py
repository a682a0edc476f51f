"""``mist`` with no command: parse where to connect, then run the TUI.

The connection factories (``RemoteMist`` for a daemon, ``open_embedded`` for the in-process core) are
imported only here, and only when used, so the app itself depends on nothing but ``MistAPI``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mist_core.api import MistAPI

from .config import Config, Credentials, Target, config_dir


def default_socket() -> str:
    if os.geteuid() == 0:
        return "unix:///run/mist/mist.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return f"unix://{runtime}/mist/mist.sock"


def default_data_dir() -> Path:
    if explicit := os.environ.get("MIST_DATA_DIR"):
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/var/lib/mist")
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "mist"


def choose_target(args: argparse.Namespace, config: Config, credentials: Credentials) -> Target:
    """``--embedded``, else ``--host``, else ``MIST_HOST``, else the config's ``default_host``, else the local
    socket. A token comes from ``MIST_TOKEN`` (an API token: never refreshed) or the saved credentials for
    that host (a login's access token and the refresh token that renews it)."""
    if args.embedded:
        return Target("embedded", str(args.data_dir or default_data_dir()), os.environ.get("MIST_TOKEN"))
    host = args.host or os.environ.get("MIST_HOST") or config.default_host or default_socket()
    if host.startswith("/"):
        host = f"unix://{host}"
    if token := os.environ.get("MIST_TOKEN"):
        return Target("daemon", host, token)
    return Target("daemon", host, credentials.get(host)[0], credentials.refresh_token(host))


async def connect(target: Target) -> MistAPI:
    """Open ``target``. An expired access token is renewed with ``target.refresh_token`` by the connection
    itself, which hands the new pair to ``target.on_session``."""
    if target.kind == "embedded":
        from mist_core.local import open_embedded  # type: ignore[import-not-found]

        return await _maybe_await(
            open_embedded(
                Path(target.address),
                target.token,
                refresh_token=target.refresh_token,
                on_session=target.on_session,
            )
        )
    from mist_core.client import RemoteMist  # type: ignore[import-not-found]

    return RemoteMist(
        target.address, target.token, refresh_token=target.refresh_token, on_session=target.on_session
    )


async def _maybe_await(value):
    if hasattr(value, "__await__"):
        return await value
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mist", description="Mist's terminal app.")
    parser.add_argument(
        "--host", help="daemon address: unix:///path/mist.sock or https://host:port (env MIST_HOST)"
    )
    parser.add_argument("--embedded", action="store_true", help="run the core in-process, without a daemon")
    parser.add_argument("--data-dir", type=Path, help="data directory for --embedded")
    parser.add_argument("--config", type=Path, help=f"config file (default {config_dir() / 'config.toml'})")
    args = parser.parse_args(argv)
    try:
        config = Config.load(args.config)
    except ValueError as exc:
        print(f"mist: {exc}", file=sys.stderr)
        return 2
    credentials = Credentials()
    target = choose_target(args, config, credentials)

    from .app import MistApp

    MistApp(connect, config, target=target, credentials=credentials).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
