"""get_task_logger: loggers whose records carry the running task's id and name."""

from __future__ import annotations

import contextvars
import logging
import reprlib

current_task_ids: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "taskqueue_current_task", default=None)


class TaskContextFilter(logging.Filter):
    """Stamps `task_id` and `task_name` on every record ("-" outside a task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = current_task_ids.get()
        record.task_id, record.task_name = current if current else ("-", "-")
        return True


_short = reprlib.Repr(maxlevel=3, maxstring=120, maxother=120, maxlong=40, maxdict=6, maxlist=6, maxtuple=6,
                      maxset=6, maxfrozenset=6, maxdeque=6, maxarray=6)


def short_repr(value: object) -> str:
    """A repr for a log line: long strings and containers cut short; never raises."""
    try:
        return _short.repr(value)
    except Exception:
        return f"<{type(value).__qualname__} that cannot be printed>"


def get_task_logger(name: str) -> logging.Logger:
    """A logger for task modules whose records carry `task_id` and `task_name`."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, TaskContextFilter) for f in logger.filters):
        logger.addFilter(TaskContextFilter())
    return logger


class _WorkerFormatter(logging.Formatter):
    """Task code's records start with their task's name[id]; taskqueue's own lines name the task in
    their text already, and records outside a task have none."""

    def format(self, record: logging.LogRecord) -> str:
        task_id = getattr(record, "task_id", "-")
        own = record.name.startswith("taskqueue.")
        record.task_prefix = "" if own or task_id == "-" else f"{getattr(record, 'task_name', '-')}[{task_id}] "
        return super().format(record)


def configure_worker_logging(level: str) -> None:
    """Worker processes log to stderr, each record with its process and task. ValueError on an
    unknown level name."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler()
    handler.addFilter(TaskContextFilter())
    handler.setFormatter(_WorkerFormatter("[%(asctime)s: %(levelname)s/%(processName)s] %(task_prefix)s%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
