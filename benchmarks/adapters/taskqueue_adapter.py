"""taskqueue: Redis broker, results in PostgreSQL (benchmarks.settings), `runworker -c 2` (prefork).

Defaults throughout: TASKQUEUE_PREFETCH (its default unless BENCH_TQ_PREFETCH is set), `get()`
woken by the result notification. Tasks are `benchmarks.tasks`; the mixed load's slow task is
`slow(seconds)` on `runworker -c 8`.

``taskqueue-amqp`` is the same set-up with only the broker changed: RabbitMQ (`amqp://`) in a
throwaway vhost of its own, with its own results database. ``taskqueue-db`` uses the database broker
(`django://`) on the PostgreSQL results database, ``taskqueue-sqlite`` the database broker with
broker and results in one SQLite file: the embedded default, nothing but the database.
"""

from __future__ import annotations

import os
from typing import Any

from ..common import (
    TASKQUEUE_REDIS_DB,
    WorkerGroup,
    amqp_url,
    delete_redis_keys,
    delete_vhost,
    python,
    recreate_vhost,
    redis_url,
)
from .base import Adapter, SqliteFile, ThrowawayDatabase

DB_NAME = "bench_taskqueue"


class TaskqueueAdapter(ThrowawayDatabase, Adapter):
    name = "taskqueue"
    description = "taskqueue, Redis broker, PostgreSQL results, runworker -c 2"
    db_name = DB_NAME
    db_env = "TASKQUEUE_BENCH_DB"
    django_settings = "benchmarks.settings"

    def __init__(self) -> None:
        self.prefix = f"tqbench-{os.getpid()}"  # before the environment is set
        super().__init__()

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "TASKQUEUE_BENCH_PREFIX": self.prefix,
                "TASKQUEUE_BENCH_BROKER_URL": self.broker_url()}

    def broker_url(self) -> str:
        return redis_url(TASKQUEUE_REDIS_DB)

    def setup_broker(self) -> None:
        """Before Django is set up (and the workers start): the broker's own namespace."""

    def teardown_broker(self) -> None:
        delete_redis_keys(TASKQUEUE_REDIS_DB, [f"{self.prefix}*"])

    def setup(self) -> None:
        import django

        self.setup_broker()
        self.recreate_database()
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

    def worker_group(self, processes: int = 2) -> WorkerGroup:
        cmd = [python(), "-m", "django", "runworker", "-c", str(processes), "-l", "warning"]
        if os.environ.get("BENCH_TQ_PREFETCH"):
            cmd += ["--prefetch", os.environ["BENCH_TQ_PREFETCH"]]
        return WorkerGroup(self.name, cmd)

    def reset_results(self) -> None:
        from taskqueue.models import TaskResult

        TaskResult.objects.all().delete()

    def enqueue(self, n: int) -> None:
        from ..tasks import add

        for i in range(n):
            add.delay(i, i)

    def count_done(self, handle: None) -> int:
        from taskqueue.models import TaskResult

        return TaskResult.objects.filter(state="SUCCESS").count()

    def round_trip(self, i: int) -> None:
        from ..tasks import add

        assert add.delay(i, i).get(timeout=10) == 2 * i

    def run_chord(self, n: int) -> int:
        from taskqueue import chord

        from ..tasks import add, tsum

        return chord((add.s(i, i) for i in range(n)), tsum.s())().get(timeout=300)

    def run_chain(self, n: int) -> int:
        from taskqueue import chain

        from ..tasks import add

        return chain(add.s(0, 1), *[add.s(1) for _ in range(n - 1)])().get(timeout=300)

    def enqueue_slow(self, seconds: float) -> Any:
        from ..tasks import slow

        return slow.delay(seconds)

    def io_worker_group(self, concurrency: int) -> WorkerGroup:
        return WorkerGroup(self.name, [python(), "-m", "django", "runworker", "-P", "asyncio", "-c", str(concurrency),
                                       "-l", "warning"])

    def enqueue_wait(self, seconds: float) -> Any:
        from ..tasks import nap

        return nap.delay(seconds)

    def wait_slow(self, handles: list[Any], timeout: float) -> None:
        self.wait_each(handles, timeout, lambda result, left: result.get(timeout=left))

    def teardown(self) -> None:
        from django.db import connections

        from taskqueue.brokers import reset_broker

        reset_broker()  # the client's broker connections, before the broker's namespace goes
        connections.close_all()
        self.drop_database()
        self.teardown_broker()


class TaskqueueAmqpAdapter(TaskqueueAdapter):
    """The same as `taskqueue` but for the broker: RabbitMQ, in a throwaway vhost."""

    name = "taskqueue-amqp"
    description = "taskqueue, RabbitMQ broker (amqp://, quorum queues), PostgreSQL results, runworker -c 2"
    db_name = "bench_taskqueue_amqp"
    vhost = "bench_taskqueue"

    def broker_url(self) -> str:
        return amqp_url(self.vhost)

    def setup_broker(self) -> None:
        recreate_vhost(self.vhost)

    def teardown_broker(self) -> None:
        delete_vhost(self.vhost)


class TaskqueueDatabaseAdapter(TaskqueueAdapter):
    """The database broker (`django://`) on the PostgreSQL results database: no Redis at all."""

    name = "taskqueue-db"
    description = "taskqueue, database broker (django://) and results in PostgreSQL, runworker -c 2"
    db_name = "bench_taskqueue_db"

    def broker_url(self) -> str:
        return "django://"

    def teardown_broker(self) -> None:
        """The broker's tables went with the database."""


class TaskqueueSqliteAdapter(SqliteFile, TaskqueueDatabaseAdapter):
    """The embedded default: the database broker, broker and results in one SQLite file."""

    name = "taskqueue-sqlite"
    description = "taskqueue, database broker (django://) and results in one SQLite file, runworker -c 2"
    db_name = "bench_taskqueue_sqlite"
    sqlite_env = "TASKQUEUE_BENCH_SQLITE"
