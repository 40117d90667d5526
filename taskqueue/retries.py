"""Pure retry maths: the countdown before a task's next attempt (backoff, cap, jitter), and the
waits between attempts to publish a message (Celery's retry policy)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any


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


# Celery's task_publish_retry_policy defaults.
DEFAULT_PUBLISH_POLICY: Mapping[str, Any] = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2,
                                             "interval_max": 1}


def publish_waits(policy: Mapping[str, Any] | None) -> Iterator[float]:
    """The seconds to wait before each new attempt to publish, as Celery's retry policy gives them:
    `interval_start`, then `interval_step` more each time up to `interval_max`; `max_retries` of
    them (None: without end). Keys not given take Celery's defaults; unknown keys are refused."""
    merged = {**DEFAULT_PUBLISH_POLICY, **(policy or {})}
    unknown = set(merged) - set(DEFAULT_PUBLISH_POLICY)
    if unknown:
        raise TypeError(f"unknown retry_policy key(s): {', '.join(sorted(unknown))} "
                        f"(known: {', '.join(DEFAULT_PUBLISH_POLICY)})")
    max_retries = merged["max_retries"]
    wait, step, cap = float(merged["interval_start"]), float(merged["interval_step"]), float(merged["interval_max"])
    retries = 0
    while max_retries is None or retries < max_retries:
        yield min(wait, cap)
        wait += step
        retries += 1
