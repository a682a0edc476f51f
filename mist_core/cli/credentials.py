"""The tokens the command line keeps between runs: ``credentials.json`` in the user's config directory,
one entry per host, readable by the user alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .. import config


def credentials_path() -> Path:
    return config.config_dir() / "credentials.json"


class CredentialStore:
    """``{"<host>": {"token": ..., "username": ...}}``. ``MIST_TOKEN`` overrides what is stored."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or credentials_path()

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # A damaged file must not lock the user out: treat it as empty; the next login rewrites it.
            return {}
        return data if isinstance(data, dict) else {}

    def token(self, host: str) -> str | None:
        if env := os.environ.get("MIST_TOKEN"):
            return env
        entry = self._load().get(host)
        if isinstance(entry, dict) and isinstance(entry.get("token"), str):
            return entry["token"]
        return None

    def username(self, host: str) -> str | None:
        entry = self._load().get(host)
        if isinstance(entry, dict) and isinstance(entry.get("username"), str):
            return entry["username"]
        return None

    def save(self, host: str, token: str, username: str) -> None:
        data = self._load()
        data[host] = {"token": token, "username": username}
        self._write(data)

    def forget(self, host: str) -> bool:
        data = self._load()
        if host not in data:
            return False
        del data[host]
        self._write(data)
        return True

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        # Created 0600 from the start, so the token is never readable by others, not even for a moment.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
