"""django-tasks-db: Django's tasks framework (`django.tasks`) with django-tasks-db's DatabaseBackend.

``django-tasks-db`` keeps its queue and results in PostgreSQL (a throwaway database of its own),
``django-tasks-db-sqlite`` in one SQLite file. The worker is `manage.py db_worker`, which runs one
task at a time in one process and has no option for more, so the group is two `db_worker`
processes side by side (eight in the mixed load), each polling with `--interval 0.005` when it
finds nothing (its default is 1 s) and started with `--no-startup-delay`. A round trip is
`add.enqueue(i, i)`, then `result.refresh()` every 5 ms until the status is SUCCESSFUL (the
framework has no blocking wait), as `celery-db-reuse` polls with `get(interval=0.005)`. The
framework has no chord or chain.
"""

from __future__ import annotations

import time
from typing import Any

from ..common import WorkerGroup, copies, python
from .base import Adapter, SqliteFile, ThrowawayDatabase

POLL_S = 0.005


class DjangoTasksAdapter(ThrowawayDatabase, Adapter):
    name = "django-tasks-db"
    description = "django-tasks-db (Django tasks), queue and results in PostgreSQL, 2 x db_worker --interval 0.005"
    db_name = "bench_django_tasks"
    db_env = "BENCH_DJANGO_TASKS_DB"
    django_settings = "benchmarks.peers.django_tasks_settings"

    def setup(self) -> None:
        import django

        self.recreate_database()
        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from django.tasks import TaskResultStatus
        from django_tasks_db.models import DBTaskResult

        from ..peers import django_tasks_tasks

        self.tasks, self.model, self.status = django_tasks_tasks, DBTaskResult, TaskResultStatus

    def worker_group(self, processes: int = 2) -> WorkerGroup:
        cmd = [python(), "-m", "django", "db_worker", "--interval", str(POLL_S), "--no-startup-delay", "-v", "0"]
        return WorkerGroup(self.name, copies(cmd, processes))

    def reset_results(self) -> None:
        self.model.objects.all().delete()

    def enqueue(self, n: int) -> None:
        add = self.tasks.add
        for i in range(n):
            add.enqueue(i, i)

    def count_done(self, handle: None) -> int:
        return self.model.objects.filter(status=self.status.SUCCESSFUL).count()

    def wait(self, result: Any, timeout: float, interval: float = POLL_S) -> Any:
        """Refresh `result` every `interval` s until it succeeded; its return value."""
        deadline = time.monotonic() + timeout
        while True:
            if result.status == self.status.SUCCESSFUL:
                return result.return_value
            if result.status == self.status.FAILED:
                raise RuntimeError(f"task {result.id} failed: {result.errors}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {result.id} still {result.status} after {timeout} s")
            time.sleep(interval)
            result.refresh()

    def round_trip(self, i: int) -> None:
        assert self.wait(self.tasks.add.enqueue(i, i), 10) == 2 * i

    def enqueue_slow(self, seconds: float) -> Any:
        return self.tasks.slow.enqueue(seconds)

    def wait_slow(self, handles: list[Any], timeout: float) -> None:
        self.wait_each(handles, timeout, lambda result, left: self.wait(result, left, interval=0.05))

    def teardown(self) -> None:
        from django.db import connections

        connections.close_all()
        self.drop_database()


class DjangoTasksSqliteAdapter(SqliteFile, DjangoTasksAdapter):
    """The same on one SQLite file (WAL): django-tasks-db claims a task in an exclusive transaction."""

    name = "django-tasks-db-sqlite"
    description = "django-tasks-db (Django tasks), queue and results in one SQLite file, 2 x db_worker --interval 0.005"
    db_name = "bench_django_tasks_sqlite"
    sqlite_env = "BENCH_DJANGO_TASKS_SQLITE"
