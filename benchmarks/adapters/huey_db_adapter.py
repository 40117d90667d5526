"""Huey 3 on a database: `PostgresHuey` (``huey-pg``) and `SqliteHuey` (``huey-sqlite``),
`huey_consumer -w 2 -k process` as the `huey` column (`-w 8` in the mixed load).

PostgresHuey dequeues with `DELETE ... FOR UPDATE SKIP LOCKED`; a worker that finds nothing waits
on LISTEN (woken by the NOTIFY each enqueue sends, up to its 1 s read timeout), so the consumer's
polling options do not apply. SqliteHuey's dequeue does not block: the consumer polls, by default
from 0.1 s backing off to 10 s, which would put 50 ms or more into every round trip; the benchmark
runs it with `--delay 0.005 --max-delay 0.005` (a worker with nothing to do looks every 5 ms). Neither storage
has Redis's result notification, so `get(blocking=True)` polls: Huey's default backoff starts at
50 ms, and the benchmark passes `backoff=1, max_delay=0.005` (every 5 ms, as `celery-db-reuse`'s
`get(interval=0.005)`). Chord and chain as in `huey`: Huey 3's `chord()` and a pipeline.
"""

from __future__ import annotations

from typing import Any

from ..common import WorkerGroup, python
from .base import SqliteFile, ThrowawayDatabase
from .huey_adapter import HueyAdapter

POLL = {"backoff": 1.0, "max_delay": 0.005}


class HueyPostgresAdapter(ThrowawayDatabase, HueyAdapter):
    name = "huey-pg"
    description = "Huey 3, PostgresHuey (LISTEN/NOTIFY dequeue), get() polled every 5 ms, huey_consumer -w 2 -k process"
    db_name = "bench_huey_pg"
    db_env = "BENCH_HUEY_PG_DB"
    huey_storage = "pg"  # BENCH_HUEY_STORAGE: the storage benchmarks.peers.huey_db_app builds
    consumer_options: list[str] = []

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "BENCH_HUEY_STORAGE": self.huey_storage}

    def setup(self) -> None:
        self.recreate_database()  # before the app's Huey, which creates its tables when it is built
        from ..peers import huey_db_app

        self.app = huey_db_app
        self.storage = huey_db_app.huey.storage

    def worker_group(self, processes: int = 2) -> WorkerGroup:
        cmd = [python(), "-m", "huey.bin.huey_consumer", "benchmarks.peers.huey_db_app.huey", "-w", str(processes),
               "-k", "process", "-q", *self.consumer_options]
        return WorkerGroup(self.name, cmd)

    def io_worker_group(self, concurrency: int) -> WorkerGroup:
        cmd = [python(), "-m", "huey.bin.huey_consumer", "benchmarks.peers.huey_db_app.huey", "-w", str(concurrency),
               "-k", "thread", "-q", *self.consumer_options]
        return WorkerGroup(self.name, cmd)

    def round_trip(self, i: int) -> None:
        assert self.app.add(i, i).get(blocking=True, timeout=10, **POLL) == 2 * i

    def run_chord(self, n: int) -> int:
        from huey import chord

        result = self.app.huey.enqueue(chord([self.app.add.s(i, i) for i in range(n)], self.app.tsum.s()))
        return result.get(blocking=True, timeout=300, **POLL)

    def run_chain(self, n: int) -> int:
        pipeline = self.app.add.s(0, 1)
        for _ in range(n - 1):
            pipeline = pipeline.then(self.app.add, 1)
        results = self.app.huey.enqueue(pipeline)
        return list(results)[-1].get(blocking=True, timeout=300, **POLL)

    def wait_slow(self, handles: list[Any], timeout: float) -> None:
        self.wait_each(handles, timeout,
                       lambda result, left: result.get(blocking=True, timeout=left, backoff=1.0, max_delay=0.05))

    def teardown(self) -> None:
        self.storage.close()
        self.drop_database()


class HueySqliteAdapter(SqliteFile, HueyPostgresAdapter):
    name = "huey-sqlite"
    description = ("Huey 3, SqliteHuey (one SQLite file), consumer polling every 5 ms "
                   "(--delay 0.005 --max-delay 0.005), get() polled every 5 ms, huey_consumer -w 2 -k process")
    db_name = "bench_huey_sqlite"
    sqlite_env = "BENCH_HUEY_SQLITE"
    huey_storage = "sqlite"
    consumer_options = ["--delay", "0.005", "--max-delay", "0.005"]
