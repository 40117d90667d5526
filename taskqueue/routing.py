"""Which queue a task goes to: explicit option, then TASKQUEUE_ROUTES (globs), then the task's queue."""

from __future__ import annotations

from fnmatch import fnmatchcase


def route(task_name: str, routes: dict | None, task_queue: str | None, default_queue: str) -> str:
    """Return the queue for `task_name` when the caller named none."""
    for pattern, target in (routes or {}).items():
        if fnmatchcase(task_name, pattern):
            return target["queue"] if isinstance(target, dict) else str(target)
    return task_queue or default_queue
