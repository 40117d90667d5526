"""The Huey 3 app of the benchmark: `add`, `tsum` and `slow`, RedisHuey on DB 15.

RedisHuey dequeues with a blocking BRPOP. `notify_result=True` (Huey 3) makes the consumer LPUSH a
per-task notification key (`huey.notify.benchhuey.<task id>`, 60 s TTL) next to each stored
result, so a client's `Result.get(blocking=True)` waits with BLPOP instead of polling.

Run with ``huey_consumer benchmarks.peers.huey_app.huey -w 2 -k process``.
"""

from __future__ import annotations

import time

from huey import RedisHuey

from benchmarks.common import HUEY_DRAMATIQ_REDIS_DB, REDIS_HOST, REDIS_PORT

NAME = "bench-huey"

huey = RedisHuey(NAME, host=REDIS_HOST, port=REDIS_PORT, db=HUEY_DRAMATIQ_REDIS_DB, results=True,
                 notify_result=True)


@huey.task()
def add(x: int, y: int) -> int:
    return x + y


@huey.task()
def tsum(numbers: list[int]) -> int:
    return sum(numbers)


@huey.task()
def slow(seconds: float) -> float:
    """The mixed load's long task. Returns a value: Huey stores no result for None (store_none=False)."""
    time.sleep(seconds)
    return seconds
