"""Huey 2: RedisHuey (results in Redis), consumer with 2 worker processes (`-w 2 -k process`).

`Result.get(blocking=True)` polls with Huey's default backoff (first sleep 0.1 s). Huey has
pipelines (`.then()`) but no chord, so the chord scenario is reported as not applicable.
"""

from __future__ import annotations

from ..common import WorkerGroup, python
from .base import Adapter


class HueyAdapter(Adapter):
    name = "huey"
    description = "Huey 2, RedisHuey, huey_consumer -w 2 -k process"

    def setup(self) -> None:
        from ..peers import huey_app

        self.app = huey_app
        self.storage = huey_app.huey.storage
        self.teardown()  # leftovers of an interrupted run

    def worker_group(self) -> WorkerGroup:
        cmd = [python(), "-m", "huey.bin.huey_consumer", "benchmarks.peers.huey_app.huey", "-w", "2", "-k", "process",
               "-q"]
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
        assert self.app.add(i, i).get(blocking=True, timeout=10) == 2 * i

    def run_chain(self, n: int) -> int:
        pipeline = self.app.add.s(0, 1)
        for _ in range(n - 1):
            pipeline = pipeline.then(self.app.add, 1)
        results = self.app.huey.enqueue(pipeline)
        return list(results)[-1].get(blocking=True, timeout=300)

    def teardown(self) -> None:
        self.storage.flush_results()
        self.storage.flush_queue()
        self.storage.flush_schedule()
