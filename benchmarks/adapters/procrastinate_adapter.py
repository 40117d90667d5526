"""Procrastinate 3 on PostgreSQL (a throwaway database of its own).

Its worker is one asyncio process whose `--concurrency` runs that many jobs at once (a sync task
in a thread). To match `runworker -c 2` (two processes, one task each) the group is two
`procrastinate worker --concurrency 1` processes side by side (eight in the mixed load), with
Procrastinate's defaults otherwise: woken by LISTEN/NOTIFY when a job is deferred (polling every
5 s as a fallback), finished jobs kept. Procrastinate stores no return value and offers a caller
no way to wait for a job, so a round trip is `add.defer(x=i, y=i)`, then the job's status read
every 5 ms (`job_manager.get_job_status`) until it is `succeeded`, as `celery-db-reuse` polls
with `get(interval=0.005)`. Throughput counts `succeeded` rows. No chord or chain.
"""

from __future__ import annotations

import time
from typing import Any

from ..common import WorkerGroup, copies, python
from .base import Adapter, ThrowawayDatabase

POLL_S = 0.005


class ProcrastinateAdapter(ThrowawayDatabase, Adapter):
    name = "procrastinate"
    description = "Procrastinate 3, PostgreSQL, 2 x worker --concurrency 1 (LISTEN/NOTIFY), status polled every 5 ms"
    db_name = "bench_procrastinate"
    db_env = "BENCH_PROCRASTINATE_DB"

    def __init__(self) -> None:
        super().__init__()
        self.conn: Any = None

    def setup(self) -> None:
        self.recreate_database()
        from ..peers import procrastinate_app

        self.peer = procrastinate_app
        self.app = procrastinate_app.app
        self.app.open()  # the sync connector: a psycopg pool in this client
        self.app.schema_manager.apply_schema()
        from procrastinate.jobs import Status

        self.succeeded, self.failed = Status.SUCCEEDED, Status.FAILED

    def worker_group(self, processes: int = 2) -> WorkerGroup:
        cmd = [python(), "-m", "procrastinate", "--app", "benchmarks.peers.procrastinate_app.app",
               "--log-level", "warning", "worker", "--concurrency", "1"]
        return WorkerGroup(self.name, copies(cmd, processes))

    def _sql(self, query: str) -> Any:
        """One statement on the driver's own connection (counting and clearing jobs)."""
        import psycopg

        if self.conn is None:
            self.conn = psycopg.connect(self.peer.CONNINFO, autocommit=True)
        cursor = self.conn.execute(query)
        return cursor.fetchone() if cursor.description else None

    def reset_results(self) -> None:
        self._sql("DELETE FROM procrastinate_jobs WHERE status IN ('succeeded', 'failed')")

    def enqueue(self, n: int) -> None:
        add = self.peer.add
        for i in range(n):
            add.defer(x=i, y=i)

    def count_done(self, handle: None) -> int:
        return self._sql("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")[0]

    def wait(self, job_id: int, timeout: float, interval: float = POLL_S) -> None:
        get_status = self.app.job_manager.get_job_status
        deadline = time.monotonic() + timeout
        while True:
            status = get_status(job_id)
            if status == self.succeeded:
                return
            if status == self.failed:
                raise RuntimeError(f"job {job_id} failed")
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {status.value} after {timeout} s")
            time.sleep(interval)

    def round_trip(self, i: int) -> None:
        self.wait(self.peer.add.defer(x=i, y=i), 10)  # no return value to check: the job succeeded

    def enqueue_slow(self, seconds: float) -> Any:
        return self.peer.slow.defer(seconds=seconds)

    def wait_slow(self, handles: list[Any], timeout: float) -> None:
        self.wait_each(handles, timeout, lambda job_id, left: self.wait(job_id, left, interval=0.05))

    def teardown(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.app.close()
        self.drop_database()
