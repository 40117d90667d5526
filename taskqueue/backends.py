"""`django.tasks` on taskqueue: tasks written with Django's `@task` run on `runworker`.

    TASKS = {"default": {"BACKEND": "taskqueue.backends.TaskQueueBackend", "QUEUES": ["default", "emails"]}}

A Django task becomes a taskqueue task named by its module path the first time it is built, so
the worker runs it, the admin shows it and `signature()` puts it in a canvas. `enqueue` writes
its result row (READY, with the time it was enqueued) and publishes through the producer: inside
`transaction.atomic()` the message leaves at the commit, and the row goes with the transaction.
Django's priorities (-100..100, default 0) keep their order on taskqueue's 0-9 scale
(`(priority + 100) * 9 / 200`, rounded: Django's default is taskqueue's 4). On Django 6.1 the
options given to `@task(...)` (`max_retries`, `retry_backoff`, `time_limit`, `lock_key`, ...) are
the taskqueue task's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.core import checks

try:  # Django 6+
    from django.tasks import TaskContext, TaskResult, TaskResultStatus
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task as DjangoTask
    from django.tasks.base import TaskError
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError:  # Django 5.2 with the django-tasks backport (pip install django-tasks)
    from django_tasks import TaskContext, TaskResult, TaskResultStatus  # type: ignore[no-redef]
    from django_tasks.backends.base import BaseTaskBackend  # type: ignore[no-redef]
    from django_tasks.base import Task as DjangoTask  # type: ignore[no-redef]
    from django_tasks.base import TaskError  # type: ignore[no-redef]
    from django_tasks.exceptions import TaskResultDoesNotExist  # type: ignore[no-redef]
    from django_tasks.signals import task_enqueued, task_finished, task_started  # type: ignore[no-redef]
    from django_tasks.utils import normalize_json  # type: ignore[no-redef]

from . import registry, states, store
from .codecs import value_of
from .producer import send
from .request import current_request
from .task import Task
from .task import task as make_task
from .utils import new_id

_STATUS = {states.SUCCESS: TaskResultStatus.SUCCESSFUL, states.FAILURE: TaskResultStatus.FAILED,
           states.REVOKED: TaskResultStatus.FAILED, states.PENDING: TaskResultStatus.READY,
           states.RECEIVED: TaskResultStatus.READY, states.RETRY: TaskResultStatus.READY}
# any other state (STARTED, a custom one such as PROGRESS) is RUNNING
_OPTIONS = ("max_retries", "default_retry_delay", "autoretry_for", "dont_autoretry_for", "retry_kwargs",
            "retry_backoff", "retry_backoff_max", "retry_jitter", "time_limit", "soft_time_limit", "lock_key",
            "rate_limit", "expires", "ignore_result", "track_started", "throws")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskQueueTask(DjangoTask):
    """Django's Task with taskqueue's task options (Django 6.1 passes `@task(**options)` here)."""

    max_retries: int | None = None
    default_retry_delay: float | None = None
    autoretry_for: tuple[type[BaseException], ...] | None = None
    dont_autoretry_for: tuple[type[BaseException], ...] | None = None
    retry_kwargs: dict[str, Any] | None = None
    retry_backoff: bool | float | None = None
    retry_backoff_max: float | None = None
    retry_jitter: bool | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    lock_key: str | Callable[..., Any] | None = None
    rate_limit: str | float | None = None
    expires: float | timedelta | datetime | None = None
    ignore_result: bool | None = None
    track_started: bool | None = None
    throws: tuple[type[BaseException], ...] | None = None

    def signature(self, args: tuple | list | None = None, kwargs: dict | None = None, **options: Any):
        """This task in taskqueue's canvas (`chain(django_task.signature((2,)), ...)`)."""
        return worker_task(self).signature(args, kwargs, **options)


class DjangoTaskRunner(Task):
    """The taskqueue task of a Django task: runs `django_task` with the message's arguments and
    sends Django's task_started (before the call) and task_finished (after the final outcome is
    stored: a receiver's get_result() sees it)."""

    django_task: DjangoTask | None = None

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if status in states.READY_STATES and self.django_task is not None and task_finished.receivers:
            row = store.fetch(task_id)
            if row is not None:
                task_finished.send(TaskQueueBackend, task_result=result_from_row(row, self.django_task.backend))


class TaskQueueBackend(BaseTaskBackend):
    task_class = TaskQueueTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, django_task: DjangoTask) -> None:
        super().validate_task(django_task)
        worker_task(django_task)  # registered as soon as it is defined: the worker imports the module

    def enqueue(self, task: DjangoTask, args: Any, kwargs: Any) -> TaskResult:  # Django's argument names
        django_task = task
        self.validate_task(django_task)
        runner = worker_task(django_task)
        task_id = new_id()
        args, kwargs = normalize_json(list(args)), normalize_json(dict(kwargs))
        store.record_queued(task_id, runner.name, args, kwargs, django_task.queue_name)
        send(runner.name, tuple(args), kwargs, task=runner, task_id=task_id, queue=django_task.queue_name,
             priority=scaled_priority(django_task.priority), eta=django_task.run_after)
        result = self.get_result(task_id)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        row = store.fetch(result_id)
        if row is None:
            raise TaskResultDoesNotExist(result_id)
        return result_from_row(row, self.alias)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors: list[checks.CheckMessage] = []
        if not all(isinstance(queue, str) and queue for queue in self.queues):  # empty: any queue
            errors.append(checks.Error(f"TASKS[{self.alias!r}]['QUEUES'] must list queue names (non-empty strings)",
                                       id="taskqueue.E101"))
        if self.options:
            errors.append(checks.Error(
                f"TASKS[{self.alias!r}]['OPTIONS'] has {sorted(self.options)}: the taskqueue backend takes no "
                "options (the TASKQUEUE_* settings configure the broker and workers)", id="taskqueue.E102"))
        return errors


def scaled_priority(priority: int) -> int:
    """Django's -100..100 on taskqueue's 0..9."""
    return round((priority + 100) * 9 / 200)


def worker_task(django_task: DjangoTask) -> Task:
    """The taskqueue task that runs `django_task` on a worker, registered under its module path."""
    name = django_task.module_path
    existing = registry.find(name)
    known = getattr(existing, "django_task", None)
    if existing is not None and known is not None and known.func is django_task.func:
        return existing
    options = {option: getattr(django_task, option) for option in _OPTIONS
               if getattr(django_task, option, None) is not None}
    runner = _runner(django_task)
    return make_task(name=name, bind=True, base=DjangoTaskRunner, typing=not django_task.takes_context,
                     queue=django_task.queue_name, django_task=django_task, **options)(runner)


def _runner(django_task: DjangoTask) -> Callable[..., Any]:
    def run(self: Task, *args: Any, **kwargs: Any) -> Any:
        if django_task.takes_context:
            running = _running(django_task)
            if task_started.receivers:
                task_started.send(TaskQueueBackend, task_result=running)
            return django_task.call(TaskContext(task_result=running), *args, **kwargs)
        if task_started.receivers:
            task_started.send(TaskQueueBackend, task_result=_running(django_task))
        return django_task.call(*args, **kwargs)

    run.__name__ = django_task.func.__name__
    run.__doc__ = django_task.func.__doc__
    run.__module__ = django_task.func.__module__
    return run


def _running(django_task: DjangoTask) -> TaskResult:
    request = current_request()
    attempts = request.retries + 1
    return TaskResult(task=django_task, id=request.id or "", status=TaskResultStatus.RUNNING, enqueued_at=None,
                      started_at=None, finished_at=None, last_attempted_at=None, args=list(request.args),
                      kwargs=dict(request.kwargs), backend=django_task.backend, errors=[],
                      worker_ids=[request.hostname or ""] * attempts)


def result_from_row(row: Any, alias: str) -> TaskResult:
    """Django's view of a result row."""
    status = _STATUS.get(row.state, TaskResultStatus.RUNNING)
    attempts = row.retries + 1 if status != TaskResultStatus.READY or row.retries else 0
    errors: list[TaskError] = []
    if status == TaskResultStatus.FAILED:
        exception = row.result if isinstance(row.result, dict) else {}
        path = f"{exception.get('exc_module', 'builtins')}.{exception.get('exc_type', 'Exception')}"
        errors.append(TaskError(exception_class_path=path, traceback=row.traceback or ""))
    finished = row.date_done if status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED) else None
    result: TaskResult = TaskResult(task=_django_task(row.task_name, alias), id=row.task_id, status=status,
                        enqueued_at=row.date_created, started_at=row.date_started or finished,
                        finished_at=finished, last_attempted_at=row.date_started or finished,
                        args=row.args or [], kwargs=row.kwargs or {}, backend=alias, errors=errors,
                        worker_ids=[row.worker] * attempts if row.worker else [])
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", normalize_json(value_of(row)))
    return result


def _django_task(name: str, alias: str) -> DjangoTask:
    runner = registry.find(name)
    django_task = getattr(runner, "django_task", None)
    if django_task is None:
        raise TaskResultDoesNotExist(f"{name} is not a django.tasks task")
    return django_task
