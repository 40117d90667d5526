"""One adapter per system; `create(name)` builds the adapter for a system name."""

from __future__ import annotations

from .base import Adapter, NotSupported

# The systems on RabbitMQ: in a default run only when RabbitMQ answers.
AMQP_SYSTEMS = ["taskqueue-amqp", "celery-amqp"]
SYSTEMS = ["taskqueue", "celery-db", "celery-db-reuse", "celery-redis", "huey", "dramatiq", *AMQP_SYSTEMS]
# taskqueue's database broker (PostgreSQL, SQLite): named with --systems, and in `idle` by default.
DATABASE_SYSTEMS = ["taskqueue-db", "taskqueue-sqlite"]


def create(name: str) -> Adapter:
    if name == "taskqueue":
        from .taskqueue_adapter import TaskqueueAdapter

        return TaskqueueAdapter()
    if name == "taskqueue-amqp":
        from .taskqueue_adapter import TaskqueueAmqpAdapter

        return TaskqueueAmqpAdapter()
    if name == "taskqueue-db":
        from .taskqueue_adapter import TaskqueueDatabaseAdapter

        return TaskqueueDatabaseAdapter()
    if name == "taskqueue-sqlite":
        from .taskqueue_adapter import TaskqueueSqliteAdapter

        return TaskqueueSqliteAdapter()
    if name.startswith("celery-"):
        from .celery_adapter import CeleryAdapter

        return CeleryAdapter(name)
    if name == "huey":
        from .huey_adapter import HueyAdapter

        return HueyAdapter()
    if name == "dramatiq":
        from .dramatiq_adapter import DramatiqAdapter

        return DramatiqAdapter()
    raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEMS + DATABASE_SYSTEMS)}")


__all__ = ["AMQP_SYSTEMS", "DATABASE_SYSTEMS", "SYSTEMS", "Adapter", "NotSupported", "create"]
