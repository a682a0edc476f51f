"""Child processes that do not outlive Mist: a build or a clone whose daemon was killed must stop too, or
it would finish later and leave an image or a checkout that nobody owns."""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A ``preexec_fn``: ask Linux to SIGKILL this child when the process that started it dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:  # not Linux/glibc: nothing to ask
        pass
