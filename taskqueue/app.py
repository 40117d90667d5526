"""The default app object, so code written as `@app.task` / `app.send_task(...)` keeps its shape."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any


class TaskQueue:
    """Celery-shaped facade over the module-level API; configuration comes from Django settings."""

    def __init__(self, main: str | None = None, **_: Any):
        self.main = main

    def task(self, *args: Any, **options: Any) -> Any:
        from .task import task

        return task(*args, **options)

    shared_task = task

    def send_task(self, name: str, args: tuple | list | None = None, kwargs: dict | None = None,
                  **options: Any):
        return send_task(name, args, kwargs, **options)

    def AsyncResult(self, task_id: str):  # noqa: N802 - Celery's name
        from .result import AsyncResult

        return AsyncResult(task_id)

    def GroupResult(self, *args: Any, **kwargs: Any):  # noqa: N802 - Celery's name
        from .result import GroupResult

        return GroupResult(*args, **kwargs)

    @property
    def tasks(self):
        from .registry import all_tasks

        return MappingProxyType(all_tasks())

    @property
    def conf(self):
        from dataclasses import asdict

        from .conf import get_settings

        return MappingProxyType({k.lower(): v for k, v in asdict(get_settings()).items()})


def send_task(name: str, args: tuple | list | None = None, kwargs: dict | None = None, **options: Any):
    """Enqueue a task by name, without importing it (it only has to be registered in the worker)."""
    from .producer import send
    from .registry import get_task, is_registered

    return send(name, tuple(args or ()), dict(kwargs or {}),
                task=get_task(name) if is_registered(name) else None, **options)


app = TaskQueue("default")
