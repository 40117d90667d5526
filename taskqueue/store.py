"""The only writer of TaskResult rows; each write is followed by a notification to waiters."""

from __future__ import annotations

import importlib
import traceback as tb_module
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connections, router
from django.db.models.constants import OnConflict
from django.utils import timezone

from . import notify, serialization, states
from .exceptions import TaskError
from .models import GroupResult as GroupResultRow
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
    encoded: Any = None  # the result already turned into JSON types (checked in the worker)


def exception_to_json(exc: BaseException) -> dict:
    """A portable description of an exception, enough to re-raise it in the caller."""
    cls = type(exc)
    try:
        args = serialization.to_jsonable(list(exc.args))
    except TypeError:
        args = [str(exc)]
    data = {"exc_type": cls.__qualname__, "exc_module": cls.__module__, "exc_message": args}
    if getattr(exc, "__notes__", None):
        data["exc_notes"] = [str(note) for note in exc.__notes__]
    return data


def exception_from_json(data: dict) -> BaseException:
    """Rebuild an exception stored by `exception_to_json` (TaskError if its class is unknown)."""
    args = serialization.from_jsonable(data.get("exc_message") or [])
    try:
        cls: Any = importlib.import_module(data["exc_module"])
        for part in data["exc_type"].split("."):
            cls = getattr(cls, part)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            exc = cls(*args)
        else:
            raise TypeError(data["exc_type"])
    except Exception:
        exc = TaskError(data.get("exc_type", "Exception"), " ".join(map(str, args)))
    for note in data.get("exc_notes") or []:
        exc.add_note(note)
    return exc


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
    """Insert or update rows by task_id in one statement (callers notify waiters after commit).

    Not bulk_create: it wraps the INSERT in BEGIN/COMMIT, three round trips instead of one.
    """
    connection = connections[router.db_for_write(TaskResult)]
    meta = TaskResult._meta
    columns = [f for f in meta.concrete_fields if not f.primary_key]
    updates = [meta.get_field(name).column for name in fields]
    qn = connection.ops.quote_name
    row_sql = f"({', '.join(['%s'] * len(columns))})"
    conflict = connection.ops.on_conflict_suffix_sql(columns, OnConflict.UPDATE, updates,
                                                     [meta.get_field("task_id").column])
    sql = (f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in columns)}) "
           f"VALUES {', '.join([row_sql] * len(rows))} {conflict}")
    params = [f.get_db_prep_save(f.pre_save(row, True), connection) for row in rows for f in columns]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def mark_started(message: Message, hostname: str, started: datetime) -> None:
    _upsert([_row(message, states.STARTED, worker=hostname, date_started=started)], _FINAL_FIELDS)
    notify.publish([message.id])


def outcome_row(out: Outcome) -> TaskResult | None:
    """The row an outcome is stored as (None for a success whose result is ignored)."""
    if out.message.ignore_result and out.state == states.SUCCESS:
        return None
    if out.state in states.EXCEPTION_STATES and isinstance(out.result, BaseException):
        result = exception_to_json(out.result)
    elif out.encoded is not None:
        result = out.encoded
    else:
        result = encode_value(out.result)
    row = _row(out.message, out.state, result=result, traceback=out.traceback, worker=out.hostname,
               date_started=out.started, date_done=timezone.now() if out.state in states.READY_STATES else None)
    if out.retries is not None:
        row.retries = out.retries
    return row


def save_outcomes(outcomes: list[Outcome]) -> None:
    """Store many outcomes in one statement (the worker's batch write), then wake their waiters."""
    rows = [row for row in map(outcome_row, outcomes) if row is not None]
    if rows:
        _upsert(rows, _FINAL_FIELDS)
        notify.publish([row.task_id for row in rows])


def store_outcome(outcome: Outcome) -> None:
    """Store one outcome inside the caller's transaction (the caller notifies after commit)."""
    row = outcome_row(outcome)
    if row is not None:
        _upsert([row], _FINAL_FIELDS)


def save_failures(task_ids: list[str], exc: BaseException, traceback: str, names: dict[str, str]) -> None:
    """Store FAILURE for tasks that will never run (later steps of a failed chain or chord)."""
    if not task_ids:
        return
    now = timezone.now()
    rows = [TaskResult(task_id=task_id, task_name=names.get(task_id, ""), state=states.FAILURE,
                       result=exception_to_json(exc), traceback=traceback, date_done=now)
            for task_id in task_ids]
    _upsert(rows, ["task_name", "state", "result", "traceback", "date_done"])
    notify.publish(task_ids)


def save_pending(rows: list[TaskResult]) -> None:
    """Create PENDING rows (chord members), so revoking one can find its chord."""
    TaskResult.objects.bulk_create(rows, ignore_conflicts=True)


def save_group(group_id: str, member_tuples: list) -> None:
    GroupResultRow.objects.update_or_create(group_id=group_id, defaults={"member_ids": member_tuples})


def restore_group(group_id: str) -> list | None:
    row = GroupResultRow.objects.filter(group_id=group_id).first()
    return None if row is None else row.member_ids


def delete_group(group_id: str) -> None:
    GroupResultRow.objects.filter(group_id=group_id).delete()


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
    notify.publish([task_id])


def mark_revoked(task_ids: list[str], reason: str = "revoked") -> list[str]:
    """Record revocation for ids not finished yet; returns those ids."""
    done = set(TaskResult.objects.filter(task_id__in=task_ids, state__in=states.READY_STATES)
               .values_list("task_id", flat=True))
    rows = [TaskResult(task_id=task_id, state=states.REVOKED, date_done=timezone.now(),
                       result={"exc_type": "TaskRevokedError", "exc_module": "taskqueue.exceptions",
                               "exc_message": [reason]})
            for task_id in task_ids if task_id not in done]
    if rows:
        _upsert(rows, ["state", "date_done", "result"])
        notify.publish([row.task_id for row in rows])
    return [row.task_id for row in rows]


def known_states(task_ids: list[str]) -> dict[str, tuple[str, int]]:
    """state and retries of the rows that exist, for redelivery and revocation checks."""
    return {tid: (state, retries) for tid, state, retries in
            TaskResult.objects.filter(task_id__in=task_ids).values_list("task_id", "state", "retries")}


class _RowReader:
    """Reads one TaskResult by task id with SQL built once: get() calls this in a loop, and the
    ORM's per-query compilation costs more than the database round trip."""

    def __init__(self, connection):
        fields = TaskResult._meta.concrete_fields
        qn = connection.ops.quote_name
        self.sql = (f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {qn(TaskResult._meta.db_table)} "
                    f"WHERE {qn('task_id')} = %s")
        self.names = [f.attname for f in fields]
        self.converters = []
        for field in fields:
            col = field.get_col(TaskResult._meta.db_table)
            self.converters.append([*connection.ops.get_db_converters(col), *field.get_db_converters(connection)])

    def read(self, connection, task_id: str) -> TaskResult | None:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, [task_id])
            row = cursor.fetchone()
        if row is None:
            return None
        values = []
        for value, converters, field in zip(row, self.converters, TaskResult._meta.concrete_fields,
                                            strict=True):
            for converter in converters:
                value = converter(value, field.get_col(TaskResult._meta.db_table), connection)
            values.append(value)
        return TaskResult.from_db(connection.alias, self.names, values)


_readers: dict[str, _RowReader] = {}


def fetch(task_id: str) -> TaskResult | None:
    """The stored row of a task, or None."""
    connection = connections[router.db_for_read(TaskResult)]
    reader = _readers.get(connection.vendor)
    if reader is None:
        reader = _readers[connection.vendor] = _RowReader(connection)
    return reader.read(connection, task_id)


def forget(task_id: str) -> None:
    TaskResult.objects.filter(task_id=task_id).delete()


def format_traceback(exc: BaseException) -> str:
    return "".join(tb_module.format_exception(type(exc), exc, exc.__traceback__))
