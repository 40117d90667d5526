"""Task name → Task, filled by @task at import and by autodiscovery of every app's tasks.py."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .conf import get_settings
from .exceptions import NotRegistered

if TYPE_CHECKING:
    from .task import Task

_tasks: dict[str, Task] = {}


def register(task: Task) -> None:
    _tasks[task.name] = task


def get_task(name: str) -> Task:
    """The registered task called `name`; NotRegistered lists what is known."""
    try:
        return _tasks[name]
    except KeyError:
        known = ", ".join(sorted(_tasks)) or "none"
        raise NotRegistered(
            f"no task named {name!r} is registered in this process (known: {known}); "
            "is its app in INSTALLED_APPS with the task in tasks.py?"
        ) from None


def find(name: str) -> Task | None:
    """The registered task called `name`, or None (a task known only to the worker, say)."""
    return _tasks.get(name)


def is_registered(name: str) -> bool:
    return name in _tasks


def all_tasks() -> dict[str, Task]:
    return dict(_tasks)


def autodiscover() -> None:
    """Import `tasks` from every installed app, then the modules the app object names (Celery's
    `include`, `imports`, `autodiscover_tasks([...])`: TASKQUEUE_IMPORTS)."""
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("tasks")
    for module in get_settings().IMPORTS:
        import_module(module)
