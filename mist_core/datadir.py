"""The data directory's permissions: only the user Mist runs as may enter it or read what Mist keeps there.

``prepare`` runs before a core opens anything in the directory: it makes the directory 0700, Mist's files
in it 0600 and its subdirectories 0700, whoever created them and however, or refuses to start, saying how
to fix it, when they belong to another user (who could read or replace the keys and the database). Files
and directories Mist makes later are private from the moment they exist.

Only what Mist keeps there is changed, by name: anything else an operator put in the directory keeps its
mode, and is out of other users' reach once the directory is 0700.
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
from pathlib import Path

from .errors import DataDirUnsafe

log = logging.getLogger("mist.core")

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# Mist's files at the top of the directory (the database with its WAL and shared memory, the keys, the lock).
FILES = ("instance-id", "master.key", "signing.key", "mist.db", "mist.db-wal", "mist.db-shm", "mist.lock")
# Mist's subdirectories whose whole contents are its own: the proxy's route files and certificates, the API's
# TLS pair.
TREES = ("proxy", "tls")
# Subdirectories made private themselves, their contents left as they are: build checkouts (COPY puts their
# modes into images, so they stay as the repository has them) and local git repositories.
DIRECTORIES = ("work", "repos")
# Made at once, so nothing creates them later with the default mode.
SUBDIRECTORIES = ("work", "proxy", "proxy/traefik")
# A key that was readable by others may have been read: say so, and how to make that copy useless.
KEY_FILES = {
    "master.key": "rotate the master key with `mist secrets rotate-key`",
    "signing.key": "delete it and restart Mist to make a new one (access tokens signed with it stop working)",
}


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _refuse_foreign(path: Path, data_dir: Path, info: os.stat_result) -> None:
    me = os.geteuid()
    if info.st_uid == me:
        return
    what = "the data directory" if path == data_dir else f"{path} in the data directory"
    raise DataDirUnsafe(
        f"{what} belongs to the user {_user(info.st_uid)}, not to {_user(me)} who runs Mist: that user "
        f"could read or replace Mist's keys and database. Run Mist as {_user(info.st_uid)}, or give the "
        f"directory to this user: chown -R {_user(me)} {data_dir} && chmod 700 {data_dir}"
    )


def _make_private(path: Path, info: os.stat_result, mode: int, changed: list[tuple[Path, int]]) -> None:
    """Give ``path`` ``mode`` unless it has it; note it in ``changed`` when others had any access."""
    current = stat.S_IMODE(info.st_mode)
    if current == mode:
        return
    try:
        os.chmod(path, mode)
    except OSError as exc:
        raise DataDirUnsafe(
            f"cannot make {path} private (mode {mode:o}): {exc.strerror}; fix it with chmod {mode:o} {path}"
        ) from None
    if current & 0o077:
        changed.append((path, current))


def _make_tree_private(path: Path, data_dir: Path, changed: list[tuple[Path, int]], *, deep: bool) -> None:
    """``path`` (a file, or a directory with its contents when ``deep``) private to its owner."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    # Symbolic links are not followed (their own modes mean nothing), nor is anything but files and
    # directories touched.
    if stat.S_ISDIR(info.st_mode):
        _refuse_foreign(path, data_dir, info)
        _make_private(path, info, PRIVATE_DIR, changed)
        if deep:
            for entry in sorted(path.iterdir()):
                _make_tree_private(entry, data_dir, changed, deep=True)
    elif stat.S_ISREG(info.st_mode):
        _refuse_foreign(path, data_dir, info)
        current = stat.S_IMODE(info.st_mode)
        if current & 0o077:  # an owner's execute bit may stay; nobody else's bits do
            _make_private(path, info, current & 0o700 | PRIVATE_FILE, changed)


def prepare(data_dir: Path) -> None:
    """Create the data directory private, or make an existing one private (see the module's docstring)."""
    try:
        data_dir.mkdir(parents=True, mode=PRIVATE_DIR)
    except FileExistsError:
        pass
    info = data_dir.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise DataDirUnsafe(f"the data directory {data_dir} is not a directory: give another --data path")
    _refuse_foreign(data_dir, data_dir, info)
    changed: list[tuple[Path, int]] = []
    _make_private(data_dir, info, PRIVATE_DIR, changed)
    for name in FILES:
        _make_tree_private(data_dir / name, data_dir, changed, deep=False)
    for name in TREES + DIRECTORIES:
        _make_tree_private(data_dir / name, data_dir, changed, deep=name in TREES)
    for path, before in changed:
        hint = KEY_FILES.get(path.name) if path.parent == data_dir else None
        log.warning(
            "%s was open to other users (mode %o): made it private%s",
            path,
            before,
            f"; if anyone else could read it, {hint}" if hint else "",
        )
    for name in SUBDIRECTORIES:
        (data_dir / name).mkdir(mode=PRIVATE_DIR, exist_ok=True)


def create_private_file(path: Path, text: str = "") -> bool:
    """Create ``path`` readable by its owner only from the start (never a moment with the default mode),
    holding ``text``; False (and nothing written) when it exists already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return True
