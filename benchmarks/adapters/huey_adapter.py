"""Huey 3: RedisHuey with `notify_result=True`, consumer with 2 worker processes (`-w 2 -k process`).

With result notification, `Result.get(blocking=True)` waits on a per-task Redis list with BLPOP,
which the consumer pushes to when it stores the result, instead of polling with backoff (Huey's
default, whose first sleep is 50 ms in Huey 3 and 0.1 s in Huey 2). The chord is Huey 3's
`chord(header, body)`: once every member has finished, the body is enqueued with the list of the
members' results (in header order) as its last argument. The chain is a pipeline (`.then()`).
The mixed load uses `-w 8`; each Huey worker dequeues one message at a time (no prefetch).
"""

from __future__ import annotations

from typing import Any

from ..common import HUEY_DRAMATIQ_REDIS_DB, WorkerGroup, delete_redis_keys, python
from .base import Adapter


class HueyAdapter(Adapter):
    name = "huey"
    description = "Huey 3, RedisHuey(notify_result=True), huey_consumer -w 2 -k process"

    def setup(self) -> None:
        from ..peers import huey_app

        self.app = huey_app
        self.storage = huey_app.huey.storage
        assert self.storage.notify_result, "the benchmark's RedisHuey must be built with notify_result=True"
        self.teardown()  # leftovers of an interrupted run

    def worker_group(self, processes: int = 2) -> WorkerGroup:
        cmd = [python(), "-m", "huey.bin.huey_consumer", "benchmarks.peers.huey_app.huey", "-w", str(processes),
               "-k", "process", "-q"]
        return WorkerGroup(self.name, cmd)

    def io_worker_group(self, concurrency: int) -> WorkerGroup:
        cmd = [python(), "-m", "huey.bin.huey_consumer", "benchmarks.peers.huey_app.huey", "-w", str(concurrency),
               "-k", "thread", "-q"]
        return WorkerGroup(self.name, cmd)

    def reset_results(self) -> None:
        self.storage.flush_results()  # deletes this Huey's result hash only

    def enqueue(self, n: int) -> None:
        add = self.app.add
        for i in range(n):
            add(i, i)

    def count_done(self, handle: None) -> int:
        return self.storage.result_store_size()

    def round_trip(self, i: int) -> None:
        # Blocking get: BLPOP on the task's notification key (notify_result=True), then HGET + HDEL.
        assert self.app.add(i, i).get(blocking=True, timeout=10) == 2 * i

    def run_chord(self, n: int) -> int:
        from huey import chord

        result = self.app.huey.enqueue(chord([self.app.add.s(i, i) for i in range(n)], self.app.tsum.s()))
        return result.get(blocking=True, timeout=300)  # ChordResult.get: the body's result

    def run_chain(self, n: int) -> int:
        pipeline = self.app.add.s(0, 1)
        for _ in range(n - 1):
            pipeline = pipeline.then(self.app.add, 1)
        results = self.app.huey.enqueue(pipeline)
        return list(results)[-1].get(blocking=True, timeout=300)

    def enqueue_slow(self, seconds: float) -> Any:
        return self.app.slow(seconds)

    def wait_slow(self, handles: list[Any], timeout: float) -> None:
        self.wait_each(handles, timeout, lambda result, left: result.get(blocking=True, timeout=left))

    def teardown(self) -> None:
        self.storage.flush_results()
        self.storage.flush_queue()
        self.storage.flush_schedule()
        self.storage.flush_counters()  # chord counters of an interrupted chord
        delete_redis_keys(HUEY_DRAMATIQ_REDIS_DB, [f"{self.storage.notify_prefix}*"])  # unread notifications
