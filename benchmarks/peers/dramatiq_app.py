"""The Dramatiq app of the benchmark: `add`, `tsum` and `slow` (the mixed load) on a Redis broker
(DB 15) with the Redis results backend.

Run with ``dramatiq benchmarks.peers.dramatiq_app --processes 2 --threads 1``. The default
middleware is kept except the Prometheus exporter (it would bind TCP port 9191).
"""

from __future__ import annotations

import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Prometheus, default_middleware
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from benchmarks.common import HUEY_DRAMATIQ_REDIS_DB, redis_url

NAMESPACE = "bench-dramatiq"

broker = RedisBroker(url=redis_url(HUEY_DRAMATIQ_REDIS_DB), namespace=NAMESPACE,
                     middleware=[m() for m in default_middleware if m is not Prometheus])
backend = RedisBackend(url=redis_url(HUEY_DRAMATIQ_REDIS_DB), namespace=f"{NAMESPACE}-results")
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, max_retries=0)
def add(x: int, y: int) -> int:
    return x + y


@dramatiq.actor(store_results=True, max_retries=0)
def tsum(numbers: list[int]) -> int:
    return sum(numbers)


@dramatiq.actor(store_results=True, max_retries=0)
def slow(seconds: float) -> float:
    """The mixed load's long task."""
    time.sleep(seconds)
    return seconds
