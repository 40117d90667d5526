"""The only writer of TaskResult rows; each write is followed by a notification to waiters."""

from __future__ import annotations

import hmac
import importlib
import json
import traceback as tb_module
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import connections, router
from django.db.models.constants import OnConflict
from django.utils import timezone

from . import notify, serialization, states
from .conf import get_settings
from .exceptions import TaskError, printable, raisable
from .message import sign
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
    except Exception:  # args that cannot be sent, or an `args` that raises
        args = [printable(exc)]
    data = {"exc_type": cls.__qualname__, "exc_module": cls.__module__, "exc_message": args}
    notes = getattr(exc, "__notes__", None)
    if notes and isinstance(notes, list):
        data["exc_notes"] = [printable(note) for note in notes]
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
    return raisable(exc)


def encode_value(value: Any) -> Any:
    """The value in JSON types, detached from the task's own objects: a worker stores the outcomes
    of a batch when it flushes, after later tasks of the batch may have changed what this one
    returned (a list kept in a module, say)."""
    try:
        encoded = serialization.to_jsonable(value, "return value")
    except TypeError as exc:
        raise TypeError(f"the task returned a value that cannot be stored: {exc}") from None
    if type(encoded) in (list, dict):
        encoded = json.loads(json.dumps(encoded))  # a deep copy of plain JSON data, in C
    return encoded


_COLUMNS = [f for f in TaskResult._meta.concrete_fields if not f.primary_key]


_STATIC_DEFAULTS = {f.attname: f.get_default() for f in _COLUMNS if not callable(f.default)}
_CALLABLE_DEFAULTS = [f for f in _COLUMNS if callable(f.default)]  # date_created


def _new_row(**values: Any) -> dict[str, Any]:
    """Column values of a TaskResult row (by attribute name), defaults filled in."""
    row = _STATIC_DEFAULTS.copy()
    for field in _CALLABLE_DEFAULTS:
        row[field.attname] = field.get_default()
    row.update(values)
    return row


def _row(message: Message, state: str, **values: Any) -> dict[str, Any]:
    return _new_row(
        task_id=message.id, task_name=message.task, state=state,
        args=serialization.to_jsonable(list(message.args)), kwargs=serialization.to_jsonable(message.kwargs),
        queue=message.queue, parent_id=message.parent_id, root_id=message.root_id,
        group_id=message.group_id, retries=message.retries, **values)


def _upsert(rows: list[dict[str, Any]], fields: list[str]) -> None:
    """Insert or update rows by task_id in one statement (callers notify waiters after commit);
    with no `fields`, a row that exists is left alone.

    Not bulk_create: it wraps the INSERT in BEGIN/COMMIT, three round trips instead of one. On
    PostgreSQL the whole batch travels as one JSON document unpacked by `json_to_recordset`: one
    parameter, dumped by the C json encoder, and the same statement text for any batch size, so it
    is planned once per connection. Elsewhere, one VALUES tuple per row.
    """
    connection = connections[router.db_for_write(TaskResult)]
    sql = _upsert_sql(connection, len(rows), tuple(fields))
    if connection.vendor == "postgresql":
        text = _rows_json(rows)
        if "\\u0000" in text or "\\ud" in text:  # NUL, or a surrogate (maybe a lone one): jsonb refuses those
            text = _rows_json([_storable_row(row) for row in rows])
        _execute(connection, sql, [text])
        return
    try:
        _execute(connection, sql, _row_params(connection, rows))
    except UnicodeEncodeError:  # a lone surrogate in a text column (sqlite3 encodes it as it binds)
        _execute(connection, sql, _row_params(connection, [_storable_row(row) for row in rows]))


def _row_params(connection, rows: list[dict[str, Any]]) -> list:
    instances = [TaskResult(**row) for row in rows]
    return [f.get_db_prep_save(f.pre_save(row, True), connection) for row in instances for f in _COLUMNS]


_JSON_COLUMNS = frozenset(f.attname for f in _COLUMNS if f.get_internal_type() == "JSONField")


def _storable_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row with every value the database would refuse (NUL, lone surrogates) escaped."""
    return {name: (serialization.storable(value) if name in _JSON_COLUMNS
                   else serialization.escape_text(value) if type(value) is str else value)
            for name, value in row.items()}


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a TaskResult column")


_rows_json = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode


_upsert_sqls: dict[tuple, str] = {}


def _upsert_sql(connection, count: int, fields: tuple[str, ...]) -> str:
    postgres = connection.vendor == "postgresql"
    cache_key = (connection.vendor, fields, None if postgres else count)
    sql = _upsert_sqls.get(cache_key)
    if sql is None:
        meta = TaskResult._meta
        qn = connection.ops.quote_name
        updates = [meta.get_field(name).column for name in fields]
        conflict = connection.ops.on_conflict_suffix_sql(_COLUMNS, OnConflict.UPDATE if fields else OnConflict.IGNORE,
                                                         updates, [meta.get_field("task_id").column])
        if fields:  # REVOKED is final: a late result, a retry or update_state() never overwrites it
            conflict += f" WHERE {qn(meta.db_table)}.{qn('state')} <> '{states.REVOKED}'"
        names = ", ".join(qn(f.column) for f in _COLUMNS)
        if postgres:  # keys of the JSON objects are attribute names, which equal the column names here
            record = ", ".join(f"{qn(f.attname)} {f.db_type(connection)}" for f in _COLUMNS)
            selected = ", ".join(qn(f.attname) for f in _COLUMNS)
            values = f"SELECT {selected} FROM json_to_recordset(%s::json) AS r({record})"
        else:
            values = "VALUES " + ", ".join([f"({', '.join(['%s'] * len(_COLUMNS))})"] * count)
        sql = _upsert_sqls[cache_key] = f"INSERT INTO {qn(meta.db_table)} ({names}) {values} {conflict}"
    return sql


def _execute(connection, sql: str, params: list, fetch_one: bool = False):
    """Run one of the hot statements (the result upsert and read). On PostgreSQL with psycopg 3,
    the autocommitted write is a statement prepared once per connection and run through libpq;
    the read, and a write inside a transaction, go through a psycopg cursor with server-side
    binding (prepared too if OPTIONS set psycopg's "prepare_threshold"; Django turns it off).
    TASKQUEUE_PREPARED_STATEMENTS = False sends everything through Django's cursor (PgBouncer
    before 1.21 in transaction mode cannot keep prepared statements)."""
    if connection.vendor == "postgresql" and get_settings().PREPARED_STATEMENTS:
        import psycopg

        connection.ensure_connection()
        raw = connection.connection
        if isinstance(raw, psycopg.Connection):
            with connection.wrap_database_errors:
                if not fetch_one and _autocommitted_write(raw, params):
                    return _exec_prepared(raw, sql, params)
                with psycopg.Cursor(raw) as cursor:
                    cursor.execute(sql, params, prepare=True)
                    return cursor.fetchone() if fetch_one else None
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if fetch_one else None


def _autocommitted_write(raw, params: list) -> bool:
    """Whether libpq can run this write directly. Not inside a transaction: psycopg sends the
    BEGIN of Django's atomic() lazily, before the first statement of a cursor."""
    import psycopg

    return (raw.autocommit and raw.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
            and all(type(param) is str for param in params))


_statement_names: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # connection -> {sql: name}


def _exec_prepared(raw, sql: str, params: list[str]) -> None:
    """A write with no rows back, through libpq's PQexecPrepared (which releases the GIL while it
    waits). psycopg's cursor adds about 0.1 ms of Python and polling to each execute: as much as
    the server spends on a one-row upsert, on the path of every result."""
    import psycopg

    names = _statement_names.setdefault(raw, {})
    values = [param.encode() for param in params]
    name = names.get(sql)
    if name is not None:
        result = raw.pgconn.exec_prepared(name, values)
        if result.error_field(psycopg.pq.DiagnosticField.SQLSTATE) != _NO_SUCH_STATEMENT:
            return _raise_if_failed(raw, result)
        # Dropped on the server, so nothing ran: psycopg sends DEALLOCATE ALL after a rollback
        # when it prepares statements itself (OPTIONS "prepare_threshold"), a pooler DISCARD ALL.
    name = name or f"taskqueue_write_{len(names)}".encode()
    _raise_if_failed(raw, raw.pgconn.prepare(name, _numbered_placeholders(sql)))
    names[sql] = name
    _raise_if_failed(raw, raw.pgconn.exec_prepared(name, values))


_NO_SUCH_STATEMENT = b"26000"  # invalid_sql_statement_name


def _raise_if_failed(raw, result) -> None:
    import psycopg

    if result.status not in (psycopg.pq.ExecStatus.COMMAND_OK, psycopg.pq.ExecStatus.TUPLES_OK):
        if raw.pgconn.status != psycopg.pq.ConnStatus.OK:  # the server went away: an outage, not a bad write
            raise psycopg.OperationalError(raw.pgconn.get_error_message(raw.info.encoding) or "connection lost")
        raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)


def _numbered_placeholders(sql: str) -> bytes:
    """`%s` placeholders (psycopg's) as `$1`, `$2`... (the server's)."""
    if "%%" in sql:
        raise ValueError("a literal % in a hot statement is not supported")
    parts = sql.split("%s")
    return "".join(part + (f"${index}" if index < len(parts) else "")
                   for index, part in enumerate(parts, 1)).encode()


def mark_started(message: Message, hostname: str, started: datetime) -> None:
    _upsert([_row(message, states.STARTED, worker=hostname, date_started=started)], _FINAL_FIELDS)
    notify.publish([message.id], finished=set())


def outcome_row(out: Outcome) -> dict[str, Any] | None:
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
        row["retries"] = out.retries
    return row


def save_outcomes(outcomes: list[Outcome], publish: bool = True) -> tuple[list[str], dict[str, bytes], set[str]]:
    """Store many outcomes in one statement (the worker's batch write), then wake their waiters
    (or, with publish=False, return what `notify.publish` needs for the caller to publish)."""
    rows = [row for row in map(outcome_row, outcomes) if row is not None]
    if not rows:
        return [], {}, set()
    _upsert(rows, _FINAL_FIELDS)
    finished = {row["task_id"] for row in rows if row["state"] in states.READY_STATES}
    wake = [row["task_id"] for row in rows], notices(rows), finished
    if publish:
        notify.publish(*wake)
    return wake


_NOTICE_LIMIT = 4096  # bytes; a larger outcome is read from the database by the waiter
_compact_json = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per json.dumps


def notices(rows: list[dict[str, Any]]) -> dict[str, bytes]:
    """Signed outcomes of the finished rows, small enough to ride on their notification."""
    key = get_settings().signing_key
    found = {}
    for row in rows:
        if row["state"] in states.READY_STATES:
            body = _compact_json([row["state"], row["result"], row["traceback"]]).encode()
            if len(body) <= _NOTICE_LIMIT:
                task_id = row["task_id"]
                found[task_id] = sign(key, task_id.encode() + b"|" + body) + b":" + body
    return found


class CarriedOutcome(NamedTuple):
    """The outcome a notification carried: what `get()` reads of a row, without building a model
    instance (a fifth of the waiter's own time)."""

    state: str
    result: Any
    traceback: str | None
    meta: Any = None


def from_notice(task_id: str, data: bytes) -> CarriedOutcome | None:
    """The outcome a notification carried, or None if it carried none or is forged."""
    signature, sep, body = data.partition(b":")
    if not sep or not hmac.compare_digest(signature, sign(get_settings().signing_key,
                                                          task_id.encode() + b"|" + body)):
        return None
    state, result, traceback = json.loads(body)
    return CarriedOutcome(state, result, traceback)


def store_outcomes(outcomes: list[Outcome]) -> None:
    """Store outcomes inside the caller's transaction (the caller notifies after commit)."""
    rows = [row for row in map(outcome_row, outcomes) if row is not None]
    if rows:
        _upsert(rows, _FINAL_FIELDS)


def save_failures(task_ids: list[str], exc: BaseException, traceback: str, names: dict[str, str]) -> None:
    """Store FAILURE for tasks that will never run (later steps of a failed chain or chord)."""
    if not task_ids:
        return
    now = timezone.now()
    rows = [_new_row(task_id=task_id, task_name=names.get(task_id, ""), state=states.FAILURE,
                     result=exception_to_json(exc), traceback=traceback, date_done=now)
            for task_id in task_ids]
    _upsert(rows, ["task_name", "state", "result", "traceback", "date_done"])
    notify.publish(task_ids)


def save_pending(members: list[tuple[str, str]], group_id: str) -> None:
    """Create PENDING rows for chord members (task id, name), so revoking one can find its chord;
    a row that exists is left as it is."""
    if connections[router.db_for_write(TaskResult)].vendor == "postgresql":  # one statement, no model instances
        _upsert([_new_row(task_id=task_id, task_name=name, group_id=group_id) for task_id, name in members], [])
    else:  # SQLite limits the parameters of one statement: bulk_create splits the rows
        TaskResult.objects.bulk_create([TaskResult(task_id=task_id, task_name=name, group_id=group_id)
                                        for task_id, name in members], ignore_conflicts=True)


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
    row = _new_row(task_id=task_id, state=state, meta=encoded, date_started=timezone.now())
    fields = ["state", "meta"]
    if request is not None and request.id == task_id:
        row.update(task_name=request.task or "", queue=request.queue or "", worker=request.hostname or "",
                   parent_id=request.parent_id, root_id=request.root_id, group_id=request.group_id,
                   retries=request.retries)
        fields += ["task_name", "queue", "worker", "parent_id", "root_id", "group_id", "retries"]
    _upsert([row], fields)
    notify.publish([task_id], finished=set())


def mark_revoked(task_ids: list[str], reason: str = "revoked") -> list[str]:
    """Record revocation for ids not finished yet; returns those ids."""
    done = set(TaskResult.objects.filter(task_id__in=task_ids, state__in=states.READY_STATES)
               .values_list("task_id", flat=True))
    rows = [_new_row(task_id=task_id, state=states.REVOKED, date_done=timezone.now(),
                     result={"exc_type": "TaskRevokedError", "exc_module": "taskqueue.exceptions",
                             "exc_message": [reason]})
            for task_id in task_ids if task_id not in done]
    if rows:
        _upsert(rows, ["state", "date_done", "result"])
        notify.publish([row["task_id"] for row in rows])
    return [row["task_id"] for row in rows]


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
        row = _execute(connection, self.sql, [task_id], fetch_one=True)
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
