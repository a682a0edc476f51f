"""Processes Mist starts on the host (``git``, ``ssh`` under it, ``docker build``): the one place their
environment is made, and the guard that stops them outliving Mist.

A host process runs as Mist's user (often root, next to ``master.key``), so what reaches its environment
decides what code it loads and which engine, config and credentials it uses. That environment is therefore
built from scratch here, from constants, a few variables the operator set for the daemon itself, and
variables Mist sets per call; a value a user controls (a build variable, a ref, a URL) can only ever reach a
host process as data in its argument list.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Mapping
from pathlib import Path

_PR_SET_PDEATHSIG = 1

# Binaries are found in the system's directories only, never in a directory a repository or a user names.
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The operator's own settings for the daemon that a child needs to reach the engine or the network: which
# engine and its TLS files, registry credentials, proxies, CA bundles, the ssh agent. Copied from the
# daemon's environment when set there; nothing else of it is (``MIST_MASTER_KEY`` among what stays behind).
OPERATOR_ENV = frozenset(
    {
        "DOCKER_HOST",
        "DOCKER_CERT_PATH",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CONFIG",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "GIT_SSL_CAINFO",
        "SSH_AUTH_SOCK",
    }
)

# What Mist itself may set for one call: BuildKit on, the engine Mist is configured for, and git's
# hardening. A fixed list, so a caller cannot hand user data (a build variable named LD_PRELOAD) to a child
# through this door either.
MIST_SET_ENV = frozenset(
    {
        "DOCKER_BUILDKIT",
        "DOCKER_HOST",
        "GIT_ALLOW_PROTOCOL",
        "GIT_ASKPASS",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_SSH_COMMAND",
        "GIT_SSH_VARIANT",
        "GIT_SSL_CAINFO",
        "GIT_TEMPLATE_DIR",
        "GIT_TERMINAL_PROMPT",
        "SSH_ASKPASS",
    }
)


def host_process_env(home: Path, mist_set: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a host process Mist starts.

    A fixed ``PATH`` and C locale, ``HOME`` at ``home`` (a private directory of the caller's, so no user's
    dotfiles apply), the operator's variables in ``OPERATOR_ENV`` that the daemon's environment sets, and
    ``mist_set`` on top. ``mist_set`` may only name variables in ``MIST_SET_ENV``: anything else is a
    programming error and raises ``ValueError`` before a process could start with it.
    """
    env = {name: value for name, value in os.environ.items() if name in OPERATOR_ENV}
    env.update({"PATH": HOST_PATH, "LANG": "C", "LC_ALL": "C", "HOME": str(home)})
    for name, value in (mist_set or {}).items():
        if name not in MIST_SET_ENV:
            raise ValueError(f"{name} is not a variable Mist sets for a host process")
        if "\0" in value:
            raise ValueError(f"the value Mist sets for {name} contains a NUL character")
        env[name] = value
    return env


def die_with_parent() -> None:
    """A ``preexec_fn``: ask Linux to SIGKILL this child when the process that started it dies, so a build
    or a clone whose daemon was killed stops too instead of leaving an image or a checkout nobody owns."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:  # not Linux/glibc: nothing to ask
        pass
