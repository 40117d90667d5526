"""The only writer of TaskResult rows; each write is followed by a notification to waiters."""

from __future__ import annotations

import importlib
import traceback as tb_module
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from . import notify, serialization, states
from .exceptions import TaskError
from .models import TaskResult

if TYPE_CHECKING:
    from .message import Message
    from .request import Request

_FINAL_FIELDS = ["task_name", "state", "args", "kwargs", "result", "traceback", "meta", "retries", "queue",
                 "worker", "parent_id", "root_id", "group_id", "date_started", "date_done"]


@dataclass
class Outcome:
    """What one execution produced, ready to be stored."""

    message: Message
    state: str
    result: Any = None  # the return value, or the exception
    traceback: str | None = None
    hostname: str = ""
    started: datetime | None = None
    retries: int | None = None  # retries count to store (RETRY stores the next attempt's number)
    next_attempt: tuple | None = None  # (args, kwargs, options) of the retry to send


def exception_to_json(exc: BaseException) -> dict:
    """A portable description of an exception, enough to re-raise it in the caller."""
    cls = type(exc)
    try:
        args = serialization.to_jsonable(list(exc.args))
    except TypeError:
        args = [str(exc)]
    return {"exc_type": cls.__qualname__, "exc_module": cls.__module__, "exc_message": args}


def exception_from_json(data: dict) -> BaseException:
    """Rebuild an exception stored by `exception_to_json` (TaskError if its class is unknown)."""
    args = serialization.from_jsonable(data.get("exc_message") or [])
    try:
        cls: Any = importlib.import_module(data["exc_module"])
        for part in data["exc_type"].split("."):
            cls = getattr(cls, part)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            return cls(*args)
    except Exception:
        pass
    return TaskError(data.get("exc_type", "Exception"), " ".join(map(str, args)))


def encode_value(value: Any) -> Any:
    try:
        return serialization.to_jsonable(value, "return value")
    except TypeError as exc:
        raise TypeError(f"the task returned a value that cannot be stored: {exc}") from None


def _row(message: Message, state: str, **values: Any) -> TaskResult:
    return TaskResult(
        task_id=message.id, task_name=message.task, state=state,
        args=serialization.to_jsonable(list(message.args)), kwargs=serialization.to_jsonable(message.kwargs),
        queue=message.queue, parent_id=message.parent_id, root_id=message.root_id,
        group_id=message.group_id, retries=message.retries, **values)


def _upsert(rows: list[TaskResult], fields: list[str]) -> None:
    TaskResult.objects.bulk_create(rows, update_conflicts=True, unique_fields=["task_id"], update_fields=fields)
    notify.publish([row.task_id for row in rows])


def mark_started(message: Message, hostname: str, started: datetime) -> None:
    _upsert([_row(message, states.STARTED, worker=hostname, date_started=started)], _FINAL_FIELDS)


def save_outcomes(outcomes: list[Outcome]) -> None:
    """Store many outcomes in one statement (the worker's batch write)."""
    now = timezone.now()
    rows = []
    for out in outcomes:
        if out.message.ignore_result and out.state == states.SUCCESS:
            continue
        if out.state in states.EXCEPTION_STATES and isinstance(out.result, BaseException):
            result = exception_to_json(out.result)
        else:
            result = encode_value(out.result)
        row = _row(out.message, out.state, result=result, traceback=out.traceback, worker=out.hostname,
                   date_started=out.started, date_done=now if out.state in states.READY_STATES else None)
        if out.retries is not None:
            row.retries = out.retries
        rows.append(row)
    if rows:
        _upsert(rows, _FINAL_FIELDS)


def save_state(task_id: str, state: str, meta: Any, request: Request | None = None) -> None:
    """A custom state from update_state(): kept in `meta`, shown as AsyncResult.info."""
    encoded = serialization.to_jsonable(meta, "meta")
    row = TaskResult(task_id=task_id, state=state, meta=encoded, date_started=timezone.now())
    fields = ["state", "meta"]
    if request is not None and request.id == task_id:
        row.task_name, row.queue, row.worker = request.task or "", request.queue or "", request.hostname or ""
        row.parent_id, row.root_id, row.group_id = request.parent_id, request.root_id, request.group_id
        row.retries = request.retries
        fields += ["task_name", "queue", "worker", "parent_id", "root_id", "group_id", "retries"]
    _upsert([row], fields)


def mark_revoked(task_ids: list[str], reason: str = "revoked") -> None:
    """Record revocation for ids not finished yet; workers skip revoked messages."""
    done = set(TaskResult.objects.filter(task_id__in=task_ids, state__in=states.READY_STATES)
               .values_list("task_id", flat=True))
    rows = [TaskResult(task_id=task_id, state=states.REVOKED, date_done=timezone.now(),
                       result={"exc_type": "TaskRevokedError", "exc_module": "taskqueue.exceptions",
                               "exc_message": [reason]})
            for task_id in task_ids if task_id not in done]
    if rows:
        _upsert(rows, ["state", "date_done", "result"])


def known_states(task_ids: list[str]) -> dict[str, tuple[str, int]]:
    """state and retries of the rows that exist, for redelivery and revocation checks."""
    return {tid: (state, retries) for tid, state, retries in
            TaskResult.objects.filter(task_id__in=task_ids).values_list("task_id", "state", "retries")}


def forget(task_id: str) -> None:
    TaskResult.objects.filter(task_id=task_id).delete()


def format_traceback(exc: BaseException) -> str:
    return "".join(tb_module.format_exception(type(exc), exc, exc.__traceback__))
