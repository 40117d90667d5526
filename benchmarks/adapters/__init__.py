"""One adapter per system; `create(name)` builds the adapter for a system name."""

from __future__ import annotations

from .base import Adapter, NotSupported

SYSTEMS = ["taskqueue", "celery-db", "celery-db-reuse", "celery-redis", "huey", "dramatiq"]


def create(name: str) -> Adapter:
    if name == "taskqueue":
        from .taskqueue_adapter import TaskqueueAdapter

        return TaskqueueAdapter()
    if name.startswith("celery-"):
        from .celery_adapter import CeleryAdapter

        return CeleryAdapter(name)
    if name == "huey":
        from .huey_adapter import HueyAdapter

        return HueyAdapter()
    if name == "dramatiq":
        from .dramatiq_adapter import DramatiqAdapter

        return DramatiqAdapter()
    raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")


__all__ = ["SYSTEMS", "Adapter", "NotSupported", "create"]
