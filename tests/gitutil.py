"""Real git repositories for tests: create one with files and a first commit, then add commits to it.

Git runs with an empty global and system config, so a developer's settings (signing, hooks, default
branch) cannot change what the tests see.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

AUTHOR_NAME = "Mist Test"
AUTHOR_EMAIL = "test@mist.invalid"

Files = Mapping[str, str | bytes | None]


def git_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": AUTHOR_NAME,
        "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
        "GIT_COMMITTER_NAME": AUTHOR_NAME,
        "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
    }


def git(repo: Path, *args: str) -> str:
    """Run ``git -C repo args...`` and return its stripped stdout; raise with git's stderr on failure."""
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=git_env())
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {repo}: {result.stderr.strip()}")
    return result.stdout.strip()


def write_files(repo: Path, files: Files) -> None:
    """Write ``files`` (path relative to the repo -> text or bytes) into the work tree; ``None`` deletes."""
    for rel, content in files.items():
        target = repo / rel
        if content is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


def init_repo(path: Path, files: Files, *, branch: str = "main", message: str = "Initial commit") -> Path:
    """Create a git repository at ``path`` holding ``files`` in one commit on ``branch``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    commit(path, files, message)
    return path


def commit(repo: Path, files: Files, message: str) -> str:
    """Write ``files`` (``None`` deletes one), commit everything on the current branch, return the sha."""
    write_files(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "--no-verify", "-m", message)
    return git(repo, "rev-parse", "HEAD")
