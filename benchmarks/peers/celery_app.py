"""The Celery 5 app of the benchmark: `add`, `tsum` and `slow` (the mixed load) on a Redis broker
(DB 14), or on RabbitMQ.

BENCH_CELERY_VARIANT picks the broker and the result backend:

* ``db``       - django-celery-results ``django-db`` with Celery's defaults (the Django fixup
                 closes the database connection around every task);
* ``db-reuse`` - ``django-db`` with CELERY_DB_REUSE_MAX=1000 (connections reused);
* ``redis``    - the Redis result backend (DB 14);
* ``amqp``     - ``db-reuse`` on RabbitMQ: the ``pyamqp`` transport (BENCH_CELERY_BROKER_URL, a
                 throwaway vhost) with Celery's defaults for it (classic durable queues, no
                 publisher confirms, AMQP heartbeat 120 s).

Each variant consumes its own queue, ``bench-celery-<variant>``.
"""

from __future__ import annotations

import os
import time

from celery import Celery

from benchmarks.common import CELERY_REDIS_DB, redis_url

VARIANT = os.environ.get("BENCH_CELERY_VARIANT", "redis")
QUEUE = f"bench-celery-{VARIANT}"
DJANGO_DB = VARIANT in ("db", "db-reuse", "amqp")
BROKER_URL = os.environ.get("BENCH_CELERY_BROKER_URL") if VARIANT == "amqp" else redis_url(CELERY_REDIS_DB)

if DJANGO_DB:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.peers.celery_settings")
else:
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)  # no Django fixup for the Redis backend

app = Celery("benchcelery")
app.conf.update(
    broker_url=BROKER_URL,
    result_backend="django-db" if DJANGO_DB else redis_url(CELERY_REDIS_DB),
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)
if VARIANT in ("db-reuse", "amqp"):
    # Read by celery.fixups.django.DjangoWorkerFixup: close the connection every 1000 tasks, not every task.
    app.conf.CELERY_DB_REUSE_MAX = 1000


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def tsum(numbers: list[int]) -> int:
    return sum(numbers)


@app.task
def slow(seconds: float) -> float:
    """The mixed load's long task."""
    time.sleep(seconds)
    return seconds
