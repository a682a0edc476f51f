"""The TUI's settings and saved logins: ``$MIST_CONFIG_DIR/config.toml`` (theme, default host, keymap, log
buffer size) and ``credentials.json`` (access and refresh tokens per host): the core's ``CredentialStore``,
the one the CLI uses, under the same lock."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mist_core.credentials import CredentialStore
from mist_core.models import Session

# The saved logins are the core's store, shared with the CLI and scripts; the TUI knows it by this name.
Credentials = CredentialStore


def config_dir() -> Path:
    """``$MIST_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/mist``, else ``~/.config/mist``."""
    if explicit := os.environ.get("MIST_CONFIG_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mist"


@dataclass
class Target:
    """Which Mist to talk to: a daemon at ``address`` (``unix:///...`` or ``https://...``), or the embedded
    core with its data in ``address``.

    ``refresh_token`` lets the connection renew an expired access token by itself; it then calls
    ``on_session`` with the new pair (the app saves it)."""

    kind: Literal["daemon", "embedded"]
    address: str
    token: str | None = None
    refresh_token: str | None = None
    on_session: Callable[[Session], None] | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        return "embedded" if self.kind == "embedded" else self.address.removeprefix("unix://")


@dataclass
class Config:
    theme: str = "textual-dark"
    default_host: str | None = None
    keymap: dict[str, str] = field(default_factory=dict)
    log_buffer_lines: int = 50_000
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        """Read ``config.toml``; a missing file gives the defaults, a broken one raises ``ValueError``
        naming the file."""
        path = path or config_dir() / "config.toml"
        config = cls(path=path)
        if not path.exists():
            return config
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path} is not valid TOML ({exc}): fix or remove it.") from exc
        config.theme = str(data.get("theme", config.theme))
        if host := data.get("default_host"):
            config.default_host = str(host)
        config.keymap = {str(k): str(v) for k, v in dict(data.get("keymap", {})).items()}
        if (lines := data.get("log_buffer_lines")) is not None:
            config.log_buffer_lines = max(1000, int(lines))
        return config

    def save_theme(self, theme: str) -> None:
        """Write ``theme = "..."`` into the file, keeping everything else in it as the user wrote it."""
        self.theme = theme
        if self.path is None:
            return
        line = f"theme = {json.dumps(theme)}"
        text = self.path.read_text() if self.path.exists() else ""
        if re.search(r"(?m)^theme\s*=.*$", text):
            text = re.sub(r"(?m)^theme\s*=.*$", lambda _: line, text, count=1)
        else:
            # Top-level keys must come before the first [table].
            text = f"{line}\n{text}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(text)
