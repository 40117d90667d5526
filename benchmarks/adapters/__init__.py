"""One adapter per system; `create(name)` builds the adapter for a system name."""

from __future__ import annotations

import importlib

from .base import Adapter, NotSupported

# The systems on RabbitMQ: in a default run only when RabbitMQ answers.
AMQP_SYSTEMS = ["taskqueue-amqp", "celery-amqp"]
SYSTEMS = ["taskqueue", "celery-db", "celery-db-reuse", "celery-redis", "huey", "dramatiq", *AMQP_SYSTEMS]
# taskqueue's database broker (PostgreSQL, SQLite): named with --systems, and in `idle` by default.
DATABASE_SYSTEMS = ["taskqueue-db", "taskqueue-sqlite"]
# The database queues a team might pick instead (issue #20), on PostgreSQL and on SQLite: named with
# --systems only, each beside the taskqueue column on the same database (see report.BASELINES).
POSTGRES_PEERS = ["django-tasks-db", "procrastinate", "huey-pg"]
SQLITE_PEERS = ["huey-sqlite", "django-tasks-db-sqlite"]
DATABASE_PEERS = [*POSTGRES_PEERS, *SQLITE_PEERS]
ALL_SYSTEMS = [*SYSTEMS, *DATABASE_SYSTEMS, *DATABASE_PEERS]

# system -> (module in this package, adapter class); the modules are imported only when asked for, so
# a driver loads one system's libraries.
ADAPTERS = {
    "taskqueue": ("taskqueue_adapter", "TaskqueueAdapter"),
    "taskqueue-amqp": ("taskqueue_adapter", "TaskqueueAmqpAdapter"),
    "taskqueue-db": ("taskqueue_adapter", "TaskqueueDatabaseAdapter"),
    "taskqueue-sqlite": ("taskqueue_adapter", "TaskqueueSqliteAdapter"),
    "huey": ("huey_adapter", "HueyAdapter"),
    "dramatiq": ("dramatiq_adapter", "DramatiqAdapter"),
    "django-tasks-db": ("django_tasks_adapter", "DjangoTasksAdapter"),
    "django-tasks-db-sqlite": ("django_tasks_adapter", "DjangoTasksSqliteAdapter"),
    "procrastinate": ("procrastinate_adapter", "ProcrastinateAdapter"),
    "huey-pg": ("huey_db_adapter", "HueyPostgresAdapter"),
    "huey-sqlite": ("huey_db_adapter", "HueySqliteAdapter"),
}


def create(name: str) -> Adapter:
    if name.startswith("celery-") and name in SYSTEMS:
        from .celery_adapter import CeleryAdapter

        return CeleryAdapter(name)
    if name not in ADAPTERS:
        raise ValueError(f"unknown system {name!r}; choose from {', '.join(ALL_SYSTEMS)}")
    module, cls = ADAPTERS[name]
    return getattr(importlib.import_module(f".{module}", __name__), cls)()


__all__ = ["ALL_SYSTEMS", "AMQP_SYSTEMS", "DATABASE_PEERS", "DATABASE_SYSTEMS", "POSTGRES_PEERS", "SQLITE_PEERS",
           "SYSTEMS", "Adapter", "NotSupported", "create"]
