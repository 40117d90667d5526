"""The default app object, so code written as `@app.task` / `app.send_task(...)` keeps its shape."""

from __future__ import annotations

from dataclasses import asdict
from types import MappingProxyType
from typing import Any

from . import registry
from .conf import get_settings
from .producer import send
from .result import AsyncResult, GroupResult
from .task import task


class TaskQueue:
    """Celery-shaped facade over the module-level API; configuration comes from Django settings."""

    def __init__(self, main: str | None = None, **_: Any):
        self.main = main

    def task(self, *args: Any, **options: Any) -> Any:
        return task(*args, **options)

    shared_task = task

    def send_task(self, name: str, args: tuple | list | None = None, kwargs: dict | None = None,
                  **options: Any):
        return send_task(name, args, kwargs, **options)

    def AsyncResult(self, task_id: str):  # noqa: N802 - Celery's name
        return AsyncResult(task_id)

    def GroupResult(self, *args: Any, **kwargs: Any):  # noqa: N802 - Celery's name
        return GroupResult(*args, **kwargs)

    @property
    def tasks(self):
        return MappingProxyType(registry.all_tasks())

    @property
    def conf(self):
        return MappingProxyType({k.lower(): v for k, v in asdict(get_settings()).items()})


def send_task(name: str, args: tuple | list | None = None, kwargs: dict | None = None, **options: Any):
    """Enqueue a task by name, without importing it (it only has to be registered in the worker)."""
    return send(name, tuple(args or ()), dict(kwargs or {}), task=registry.find(name), **options)


app = TaskQueue("default")
