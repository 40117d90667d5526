"""The soft time limit: SIGALRM in the process running the task raises SoftTimeLimitExceeded.

The hard limit is the supervisor's job: it kills the child from outside.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..exceptions import SoftTimeLimitExceeded


def _raise_soft_limit(signum, frame):
    raise SoftTimeLimitExceeded("soft time limit exceeded")


@contextmanager
def soft_time_limit(seconds: float | None) -> Iterator[None]:
    """Raise SoftTimeLimitExceeded in the task after `seconds` (main thread only)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_soft_limit)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
