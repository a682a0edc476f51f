"""Where Mist keeps things and how it is tuned: paths from flags, ``MIST_*`` environment variables and
defaults (root: ``/var/lib/mist`` and ``/run/mist``; others: the XDG directories)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _is_root() -> bool:
    return os.geteuid() == 0


def default_data_dir() -> Path:
    if env := os.environ.get("MIST_DATA_DIR"):
        return Path(env)
    if _is_root():
        return Path("/var/lib/mist")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mist"


def default_socket_path() -> Path:
    if env := os.environ.get("MIST_SOCKET"):
        return Path(env)
    if _is_root():
        return Path("/run/mist/mist.sock")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "mist" / "mist.sock"
    return default_data_dir() / "mist.sock"


def config_dir() -> Path:
    """The user's client-side config: credentials.json (tokens per host) and config.toml (TUI)."""
    if env := os.environ.get("MIST_CONFIG_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mist"


def default_host() -> str:
    """The daemon the client talks to: ``MIST_HOST`` or the local socket."""
    return os.environ.get("MIST_HOST") or f"unix://{default_socket_path()}"


@dataclass
class CoreConfig:
    """How one core (embedded or inside the daemon) runs."""

    data_dir: Path = field(default_factory=default_data_dir)
    docker_host: str | None = field(default_factory=lambda: os.environ.get("MIST_DOCKER_HOST"))
    docker_bin: str = field(default_factory=lambda: os.environ.get("MIST_DOCKER_BIN", "/usr/bin/docker"))
    workers: int = field(default_factory=lambda: int(os.environ.get("MIST_WORKERS", "2")))
    # Local paths a git URL may point at (development): the data dir's repos/ plus MIST_GIT_ROOTS (':'-separated).
    git_roots: list[Path] = field(default_factory=list)
    run_workers: bool = True  # False: API only (tests of the store, or a read-only embedded client)
    metrics_interval: float = field(
        default_factory=lambda: float(os.environ.get("MIST_METRICS_INTERVAL", "5"))
    )
    # How long an access token (JWT) lives; clients renew it with their refresh token.
    access_token_seconds: int = field(
        default_factory=lambda: int(os.environ.get("MIST_ACCESS_TOKEN_SECONDS", "900"))
    )

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if not self.git_roots:
            roots = [self.data_dir / "repos"]
            extra = os.environ.get("MIST_GIT_ROOTS", "")
            roots += [Path(p) for p in extra.split(":") if p]
            self.git_roots = roots

    @property
    def db_path(self) -> Path:
        return self.data_dir / "mist.db"

    @property
    def master_key_path(self) -> Path:
        return Path(os.environ.get("MIST_MASTER_KEY_FILE") or self.data_dir / "master.key")

    @property
    def signing_key_path(self) -> Path:
        """The key that signs access tokens, kept like the master key (0600, outside the database)."""
        return Path(os.environ.get("MIST_SIGNING_KEY_FILE") or self.data_dir / "signing.key")

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work"

    @property
    def lock_path(self) -> Path:
        return self.data_dir / "mist.lock"
