"""The Huey 3 app of the benchmark: `add`, `tsum` and `slow` (`huey_tasks`), RedisHuey on DB 15.

RedisHuey dequeues with a blocking BRPOP. `notify_result=True` (Huey 3) makes the consumer LPUSH a
per-task notification key (`huey.notify.benchhuey.<task id>`, 60 s TTL) next to each stored
result, so a client's `Result.get(blocking=True)` waits with BLPOP instead of polling.

Run with ``huey_consumer benchmarks.peers.huey_app.huey -w 2 -k process``.
"""

from __future__ import annotations

from huey import RedisHuey

from benchmarks.common import HUEY_DRAMATIQ_REDIS_DB, REDIS_HOST, REDIS_PORT
from benchmarks.peers.huey_tasks import define_tasks

NAME = "bench-huey"

huey = RedisHuey(NAME, host=REDIS_HOST, port=REDIS_PORT, db=HUEY_DRAMATIQ_REDIS_DB, results=True,
                 notify_result=True)

add, tsum, slow = define_tasks(huey, __name__)
