"""The TUI's settings and saved logins: ``$MIST_CONFIG_DIR/config.toml`` (theme, default host, keymap, log
buffer size) and ``credentials.json`` (tokens per host, shared with the CLI, mode 0600)."""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


def config_dir() -> Path:
    """``$MIST_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/mist``, else ``~/.config/mist``."""
    if explicit := os.environ.get("MIST_CONFIG_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mist"


@dataclass
class Target:
    """Which Mist to talk to: a daemon at ``address`` (``unix:///...`` or ``https://...``), or the embedded
    core with its data in ``address``."""

    kind: Literal["daemon", "embedded"]
    address: str
    token: str | None = None

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


class Credentials:
    """``credentials.json``: ``{"<host>": {"token": "...", "username": "..."}}``, readable only by its owner."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "credentials.json"

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, host: str) -> tuple[str | None, str | None]:
        """``(token, username)`` saved for ``host``."""
        entry = self._read().get(host) or {}
        return entry.get("token"), entry.get("username")

    def save(self, host: str, token: str, username: str) -> None:
        data = self._read()
        data[host] = {"token": token, "username": username}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, self.path)

    def forget(self, host: str) -> None:
        data = self._read()
        if data.pop(host, None) is not None:
            self.save_all(data)

    def save_all(self, data: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
