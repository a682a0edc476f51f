"""How long repeated login failures lock an account or a source address out (exponential backoff).

The counters live in the store (``login_failures``); this module only holds the policy. A success clears
the account's counter; a counter with no failure for ``FORGET_AFTER`` starts again.
"""

from __future__ import annotations

from datetime import timedelta

ACCOUNT_THRESHOLD = 5  # failures in a row before an account is locked
SOURCE_THRESHOLD = 20  # failures from one address (any accounts) before it is locked
BASE_SECONDS = 30.0
MAX_SECONDS = 15 * 60.0
FORGET_AFTER = timedelta(hours=1)  # a counter with no failure this long starts again from zero


def lock_seconds(failures: int, threshold: int) -> float:
    """The lock after the ``failures``-th failure in a row: none below the threshold, then 30 s doubling
    with every further failure, at most 15 minutes."""
    if failures < threshold:
        return 0.0
    return min(MAX_SECONDS, BASE_SECONDS * 2 ** (failures - threshold))
