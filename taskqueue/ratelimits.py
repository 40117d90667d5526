"""`rate_limit`: a token bucket per task name, global across workers, in the results database.

A worker takes a token before it runs a rate-limited task; without one, the message goes back to
its queue until the next token is due (nothing waits in a worker's memory, nothing is dropped). The
rate is the task's own (`@task(rate_limit="10/m")`) unless a `RateLimit` row sets another, which can
be changed while workers run. As Celery's, a bucket holds one token: no bursts.
"""

from __future__ import annotations

import re
import threading
import time
from functools import lru_cache

from django.db import connections, router, transaction

REFRESH_EVERY = 5.0  # seconds between a consumer's reads of the rates set at run time
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*$")
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@lru_cache(maxsize=256)
def parse(rate: str | float | int | None) -> float | None:
    """Tasks per second of a Celery rate ("10/s", "100/m", "1000/h", or a number per second);
    None for no limit (None, "", 0)."""
    if rate is None or rate == "":
        return None
    if isinstance(rate, (int, float)) and not isinstance(rate, bool):
        per_second = float(rate)
    else:
        match = _RATE.match(str(rate))
        if not match:
            raise ValueError(f'invalid rate_limit {rate!r}: use "10/s", "100/m", "1000/h" or a number per second')
        per_second = float(match.group(1)) / _PER[match.group(2)]
    if per_second < 0:
        raise ValueError(f"invalid rate_limit {rate!r}: negative")
    return per_second or None


class _SetRates:
    """The rates set at run time, read at most every REFRESH_EVERY seconds by each process."""

    def __init__(self) -> None:
        self._rates: dict[str, str] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, task_name: str) -> str | None:
        if time.monotonic() - self._read_at >= REFRESH_EVERY:
            with self._lock:
                self._rates = _read_set_rates()
                self._read_at = time.monotonic()
        return self._rates.get(task_name)

    def forget(self) -> None:
        self._read_at = float("-inf")


set_rates = _SetRates()


def _read_set_rates() -> dict[str, str]:
    """By a plain cursor: a consumer that otherwise runs no ORM query keeps the ORM's query
    machinery out of its memory (a quarter of a MB per process)."""
    from .models import RateLimit  # waits for Django's app registry, like store.py

    connection = connections[router.db_for_read(RateLimit)]
    table = connection.ops.quote_name(RateLimit._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT task_name, rate FROM {table} WHERE rate <> ''")  # noqa: S608 - a model's table
        return dict(cursor.fetchall())


def rate_of(task_name: str, own: str | float | None) -> float | None:
    """Tasks per second allowed for this task name now; None for no limit."""
    return parse(set_rates.get(task_name) or own)


def wait_for_token(task_name: str, per_second: float) -> float:
    """Take a token of `task_name`'s bucket: 0.0 if taken, else the seconds until the next is due."""
    from .models import RateLimit  # waits for Django's app registry, like store.py

    now = time.time()
    with transaction.atomic():
        bucket, _ = RateLimit.objects.select_for_update().get_or_create(
            task_name=task_name, defaults={"tokens": 1.0, "refilled_at": now})
        tokens = min(1.0, bucket.tokens + max(0.0, now - bucket.refilled_at) * per_second)
        if tokens >= 1.0:
            bucket.tokens, bucket.refilled_at = tokens - 1.0, now
            bucket.save(update_fields=["tokens", "refilled_at"])
            return 0.0
    return (1.0 - tokens) / per_second


def set_rate(task_name: str, rate: str | float | None) -> None:
    """Change a task name's rate while workers run (None: back to the task's own; 0: no limit)."""
    from .models import RateLimit  # waits for Django's app registry, like store.py

    text = "" if rate is None else ("0" if parse(rate) is None else str(rate))
    RateLimit.objects.update_or_create(task_name=task_name, defaults={"rate": text})
    set_rates.forget()


_spaced_until: dict[str, float] = {}  # per process: the messages it hands back, one token apart


def hand_back_delay(task_name: str, wait: float, per_second: float) -> float:
    """How long a message refused a token stays away: until its token is due, and after the others
    this process handed back, so they do not all come back for the same token."""
    now = time.monotonic()
    due = max(now + wait, _spaced_until.get(task_name, now))
    _spaced_until[task_name] = due + 1.0 / per_second
    return due - now
