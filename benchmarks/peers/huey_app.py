"""The Huey 2 app of the benchmark: `add` and `tsum`, RedisHuey (blocking dequeue) on DB 15.

Run with ``huey_consumer benchmarks.peers.huey_app.huey -w 2 -k process``.
"""

from __future__ import annotations

from huey import RedisHuey

from benchmarks.common import HUEY_DRAMATIQ_REDIS_DB, REDIS_HOST, REDIS_PORT

NAME = "bench-huey"

huey = RedisHuey(NAME, host=REDIS_HOST, port=REDIS_PORT, db=HUEY_DRAMATIQ_REDIS_DB, results=True)


@huey.task()
def add(x: int, y: int) -> int:
    return x + y


@huey.task()
def tsum(numbers: list[int]) -> int:
    return sum(numbers)
