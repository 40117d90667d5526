"""Exceptions raised by taskqueue, named as in Celery so `except` clauses port unchanged."""

from __future__ import annotations

import builtins
from datetime import datetime


class TaskqueueError(Exception):
    """Base class of every taskqueue error."""


class Retry(TaskqueueError):
    """Raised by `Task.retry()` to ask the worker to run the task again later."""

    def __init__(self, message: str | None = None, exc: BaseException | None = None,
                 when: datetime | float | None = None, args: tuple | None = None, kwargs: dict | None = None,
                 options: dict | None = None):
        self.exc = exc
        self.when = when
        self.call_args, self.call_kwargs = args, kwargs  # new arguments for the next attempt, if any
        self.options = options or {}
        super().__init__(message or f"Retry in {when!r}: {exc!r}")


class MaxRetriesExceededError(TaskqueueError):
    """The task asked for a retry past its `max_retries`."""


class SoftTimeLimitExceeded(TaskqueueError):
    """Raised inside a task when its soft time limit expires."""


class TimeLimitExceeded(TaskqueueError):
    """The task ran past its hard time limit and its process was killed."""


class WorkerLostError(TaskqueueError):
    """The process running the task died before the task finished."""


class TimeoutError(builtins.TimeoutError, TaskqueueError):  # noqa: A001 - Celery's name
    """`AsyncResult.get()` or `join()` gave up waiting."""


class ChordError(TaskqueueError):
    """A member of a chord's header failed, so the body did not run."""


class TaskRevokedError(TaskqueueError):
    """The task was revoked before it could run."""


class NotRegistered(KeyError, TaskqueueError):
    """No task with that name is registered in this process."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "task not registered"


class DeadLettered(TaskqueueError):
    """The task's message was kept as a dead letter (its reason is the message): it runs only if
    an operator requeues it."""


class DecodeError(TaskqueueError):
    """A message could not be verified or decoded; it goes to the dead-letter store."""


class ImproperlyConfigured(TaskqueueError):
    """A taskqueue setting is missing or wrong."""


class TaskError(TaskqueueError):
    """Stands in for an exception whose class cannot be imported where the result is read."""

    def __init__(self, exc_type: str, message: str):
        self.exc_type = exc_type
        super().__init__(f"{exc_type}: {message}" if message else exc_type)


class TaskExit(TaskError):
    """A task ended with SystemExit, KeyboardInterrupt or another exception that is not an
    `Exception`; raising that in the caller would end the caller, so this stands in for it."""


def printable(value: object) -> str:
    """str() of a value from task code, which may raise: then its repr, then just its type."""
    for show in (str, repr):
        try:
            return show(value)
        except Exception:
            pass
    return f"<{type(value).__qualname__} that cannot be printed>"


def raisable(exc: BaseException) -> BaseException:
    """`exc`, or a TaskExit standing in for it when raising it would stop the caller's process."""
    if isinstance(exc, Exception):
        return exc
    try:
        message = " ".join(map(printable, exc.args))
    except Exception:
        message = ""
    return TaskExit(type(exc).__name__, message)
