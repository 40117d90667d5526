"""Pure retry maths: the countdown before the next attempt (backoff, cap, jitter)."""

from __future__ import annotations

import random


def backoff_countdown(retries: int, backoff: bool | int | float, backoff_max: float,
                      jitter: bool) -> float:
    """Seconds to wait before attempt `retries + 1` under exponential backoff.

    `backoff=True` means a factor of 1: 1, 2, 4, 8... With jitter the value is drawn
    from [0, countdown], as Celery does, so many failing tasks do not retry in lockstep.
    """
    factor = 1 if backoff is True else float(backoff)
    countdown = min(backoff_max, factor * (2 ** retries))
    if jitter:
        countdown = random.randrange(int(countdown) + 1)
    return float(countdown)
