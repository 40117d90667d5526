"""Celery 5 on a Redis broker, `celery worker -c 2 -P prefork` (`-c 8` in the mixed load), in three
result set-ups, and on RabbitMQ in one.

* ``celery-db``: django-celery-results ``django-db`` with defaults (`get()` polls every 0.5 s);
* ``celery-db-reuse``: ``django-db`` with CELERY_DB_REUSE_MAX=1000 and `get(interval=0.005)`;
* ``celery-redis``: the Redis result backend (`get()` is woken by pub/sub);
* ``celery-amqp``: ``celery-db-reuse`` with the broker changed to RabbitMQ (`pyamqp://`, Celery's
  defaults for it: classic queues), in a throwaway vhost of its own.

Heartbeat, gossip and mingle are switched off (the three variants share one Redis DB, and they
only add background traffic); everything else is Celery's default (prefetch multiplier 4,
acks on receipt). The mixed load's slow tasks are awaited with `get(interval=0.05)` in every
set-up, so the django-db default 0.5 s poll does not pad the makespan.
"""

from __future__ import annotations

import os
from typing import Any

from ..common import (
    CELERY_REDIS_DB,
    WorkerGroup,
    amqp_url,
    count_existing_keys,
    delete_redis_keys,
    delete_vhost,
    drop_database,
    python,
    recreate_database,
    recreate_vhost,
    redis_client,
)
from .base import Adapter

VARIANTS = {
    "celery-db": ("db", "Celery 5, Redis broker, django-celery-results (django-db), defaults"),
    "celery-db-reuse": ("db-reuse", "Celery 5, Redis broker, django-db, CELERY_DB_REUSE_MAX=1000, get(interval=0.005)"),
    "celery-redis": ("redis", "Celery 5, Redis broker, Redis result backend"),
    "celery-amqp": ("amqp", "Celery 5, RabbitMQ broker (pyamqp://, classic queues), django-db, "
                            "CELERY_DB_REUSE_MAX=1000, get(interval=0.005)"),
}
AMQP_VHOST = "bench_celery"


class CeleryAdapter(Adapter):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.variant, self.description = VARIANTS[name]
        self.django_db = self.variant in ("db", "db-reuse", "amqp")
        self.on_rabbitmq = self.variant == "amqp"
        self.db_name = f"bench_celery_{self.variant.replace('-', '_')}"
        self.interval = 0.005 if self.variant in ("db-reuse", "amqp") else None  # None: Celery's default (0.5 s)
        os.environ["BENCH_CELERY_VARIANT"] = self.variant
        os.environ["BENCH_CELERY_DB"] = self.db_name
        if self.on_rabbitmq:
            os.environ["BENCH_CELERY_BROKER_URL"] = amqp_url(AMQP_VHOST, scheme="pyamqp")
        if self.django_db:
            os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.peers.celery_settings"
        else:
            os.environ.pop("DJANGO_SETTINGS_MODULE", None)

    def _get_kwargs(self, timeout: float) -> dict:
        return {"timeout": timeout} if self.interval is None else {"timeout": timeout, "interval": self.interval}

    def setup(self) -> None:
        if self.on_rabbitmq:
            recreate_vhost(AMQP_VHOST)
        if self.django_db:
            import django

            recreate_database(self.db_name)
            django.setup()
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
        from ..peers import celery_app

        self.app = celery_app
        self.redis = redis_client(CELERY_REDIS_DB)

    def worker_group(self, processes: int = 2) -> WorkerGroup:
        cmd = [python(), "-m", "celery", "-A", "benchmarks.peers.celery_app", "worker", "-c", str(processes),
               "-P", "prefork", "-Q", self.app.QUEUE, "-n", f"{self.variant}@%h", "--without-heartbeat",
               "--without-gossip", "--without-mingle", "-l", "warning"]
        return WorkerGroup(self.name, cmd)

    def io_worker_group(self, concurrency: int) -> WorkerGroup:
        cmd = [python(), "-m", "celery", "-A", "benchmarks.peers.celery_app", "worker", "-c", str(concurrency),
               "-P", "threads", "-Q", self.app.QUEUE, "-n", f"{self.variant}@%h", "--without-heartbeat",
               "--without-gossip", "--without-mingle", "-l", "warning"]
        return WorkerGroup(self.name, cmd)

    def reset_results(self) -> None:
        if self.django_db:
            from django_celery_results.models import TaskResult

            TaskResult.objects.all().delete()

    def enqueue(self, n: int) -> list[str]:
        add = self.app.add
        return [add.delay(i, i).id for i in range(n)]

    def count_done(self, ids: list[str]) -> int:
        if self.django_db:
            from django_celery_results.models import TaskResult

            return TaskResult.objects.filter(status="SUCCESS").count()
        return count_existing_keys(self.redis, [f"celery-task-meta-{task_id}" for task_id in ids])

    def round_trip(self, i: int) -> None:
        assert self.app.add.delay(i, i).get(**self._get_kwargs(10)) == 2 * i

    def run_chord(self, n: int) -> int:
        from celery import chord

        return chord(self.app.add.s(i, i) for i in range(n))(self.app.tsum.s()).get(**self._get_kwargs(300))

    def run_chain(self, n: int) -> int:
        from celery import chain

        add = self.app.add
        return chain(add.s(0, 1), *[add.s(1) for _ in range(n - 1)])().get(**self._get_kwargs(300))

    def enqueue_slow(self, seconds: float) -> Any:
        return self.app.slow.delay(seconds)

    def wait_slow(self, handles: list[Any], timeout: float) -> None:
        self.wait_each(handles, timeout, lambda result, left: result.get(timeout=left, interval=0.05))

    def teardown(self) -> None:
        if self.django_db:
            from django.db import connections

            connections.close_all()
            drop_database(self.db_name)
        else:
            delete_redis_keys(CELERY_REDIS_DB, ["celery-task-meta-*", "celery-taskset-meta-*", "chord-unlock-*"])
        if self.on_rabbitmq:
            self.app.app.close()  # the client's broker connections, before their vhost goes
            delete_vhost(AMQP_VHOST)
            return
        delete_redis_keys(CELERY_REDIS_DB, [self.app.QUEUE, f"_kombu.binding*.{self.app.QUEUE}", "unacked",
                                            "unacked_index", "unacked_mutex", "_kombu.binding_deadlines"])
