"""Pure retry and rate maths: the countdown before a task's next attempt (backoff, cap, jitter),
the waits between attempts to publish (Celery's retry policy), and rate limits ("10/m")."""

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


_PER_SECOND = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(limit: str | int | float | None) -> float | None:
    """Tasks per second of a Celery rate limit: "10/s", "100/m", "1000/h", "5" or a number (per
    second). None, 0 and "0" mean no limit (None). Anything else raises ValueError."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (str, int, float)):
        raise ValueError(f"rate_limit must be a number or a string like '10/s', '100/m', '1000/h', not {limit!r}")
    if isinstance(limit, str):
        count, _, unit = limit.strip().partition("/")
        try:
            per = _PER_SECOND[unit.strip() or "s"]
            value = float(count) / per
        except (KeyError, ValueError):
            raise ValueError(f"invalid rate_limit {limit!r}: use '<number>/s', '/m' or '/h' "
                             "(e.g. '10/s', '100/m', '1000/h'), or a number of tasks per second") from None
    else:
        value = float(limit)
    if value != value or value < 0 or value == float("inf"):
        raise ValueError(f"invalid rate_limit {limit!r}: the rate must be a finite number >= 0")
    return value or None
