"""taskqueue: Redis broker, results in PostgreSQL (benchmarks.settings), `runworker -c 2` (prefork).

Defaults throughout: TASKQUEUE_PREFETCH (1 unless BENCH_TQ_PREFETCH is set), `get()` woken by the
result notification.
"""

from __future__ import annotations

import os

from ..common import TASKQUEUE_REDIS_DB, WorkerGroup, delete_redis_keys, python, recreate_database, redis_url
from .base import Adapter

DB_NAME = "bench_taskqueue"


class TaskqueueAdapter(Adapter):
    name = "taskqueue"
    description = "taskqueue, Redis broker, PostgreSQL results, runworker -c 2"

    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"tqbench-{os.getpid()}"
        os.environ.update({
            "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
            "TASKQUEUE_BENCH_DB": DB_NAME,
            "TASKQUEUE_BENCH_PREFIX": self.prefix,
            "TASKQUEUE_TEST_REDIS_URL": redis_url(TASKQUEUE_REDIS_DB),
            "TASKQUEUE_TEST_BROKER": "redis",
        })

    def setup(self) -> None:
        import django

        recreate_database(DB_NAME)
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

    def worker_group(self) -> WorkerGroup:
        cmd = [python(), "-m", "django", "runworker", "-c", "2", "-l", "warning"]
        if os.environ.get("BENCH_TQ_PREFETCH"):
            cmd += ["--prefetch", os.environ["BENCH_TQ_PREFETCH"]]
        return WorkerGroup(self.name, cmd)

    def reset_results(self) -> None:
        from taskqueue.models import TaskResult

        TaskResult.objects.all().delete()

    def enqueue(self, n: int) -> None:
        from tests.tasks import add

        for i in range(n):
            add.delay(i, i)

    def count_done(self, handle: None) -> int:
        from taskqueue.models import TaskResult

        return TaskResult.objects.filter(state="SUCCESS").count()

    def round_trip(self, i: int) -> None:
        from tests.tasks import add

        assert add.delay(i, i).get(timeout=10) == 2 * i

    def run_chord(self, n: int) -> int:
        from taskqueue import chord
        from tests.tasks import add, tsum

        return chord((add.s(i, i) for i in range(n)), tsum.s())().get(timeout=300)

    def run_chain(self, n: int) -> int:
        from taskqueue import chain
        from tests.tasks import add

        return chain(add.s(0, 1), *[add.s(1) for _ in range(n - 1)])().get(timeout=300)

    def teardown(self) -> None:
        from django.db import connections

        from ..common import drop_database

        connections.close_all()
        drop_database(DB_NAME)
        delete_redis_keys(TASKQUEUE_REDIS_DB, [f"{self.prefix}*"])
