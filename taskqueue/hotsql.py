"""The two statements on the path of every result, tuned by hand: the upsert of TaskResult rows
(`upsert`) and the read of one row by task id (`read`), run by `sqlexec.execute` (libpq on
PostgreSQL; a worker's write `visible_first`). Everything else goes through the ORM.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connections, router
from django.db.models.constants import OnConflict

from . import serialization, states
from .sqlexec import execute


class _Schema:
    """What the statements need to know of the TaskResult table, worked out once."""

    def __init__(self) -> None:
        from .models import TaskResult  # waits for Django's app registry: `import taskqueue` comes first

        self.model = TaskResult
        self.meta = TaskResult._meta
        self.columns = [f for f in self.meta.concrete_fields if not f.primary_key]
        self.static_defaults = {f.attname: f.get_default() for f in self.columns if not callable(f.default)}
        self.callable_defaults = [f for f in self.columns if callable(f.default)]  # date_created
        self.json_columns = frozenset(f.attname for f in self.columns if f.get_internal_type() == "JSONField")


schema = cache(_Schema)


def new_row(**values: Any) -> dict[str, Any]:
    """Column values of a TaskResult row (by attribute name), defaults filled in."""
    table = schema()
    row = table.static_defaults.copy()
    for field in table.callable_defaults:
        row[field.attname] = field.get_default()
    row.update(values)
    return row


def upsert(rows: list[dict[str, Any]], fields: list[str], *, over_finished: bool = True,
           notify_channel: str | None = None, notices: dict[str, bytes] | None = None) -> None:
    """Insert or update rows by task_id in one statement (callers notify waiters after commit);
    with no `fields`, a row that exists is left alone. REVOKED is final: never overwritten; with
    `over_finished` False, neither are SUCCESS and FAILURE (STARTED of a late duplicate run).
    `notify_channel` (PostgreSQL): the statement itself NOTIFYs each written task id there, so
    waiters wake at its commit without another round trip; a task id of `notices` is followed in its
    payload by a newline and that signed outcome, so its waiter need not read the row.

    Not bulk_create: it wraps the INSERT in BEGIN/COMMIT, three round trips instead of one. On
    PostgreSQL the whole batch travels as one JSON document unpacked by `json_to_recordset`: one
    parameter, dumped by the C json encoder, and the same statement text for any batch size, so it
    is planned once per connection. Elsewhere, one VALUES tuple per row.
    """
    table = schema()
    connection = connections[router.db_for_write(table.model)]
    sql = _upsert_sql(connection, len(rows), tuple(fields), over_finished)
    if connection.vendor == "postgresql":
        text = _rows_json(rows)
        if "\\u0000" in text or "\\ud" in text:  # NUL, or a surrogate (maybe a lone one): jsonb refuses those
            text = _rows_json([_storable_row(row) for row in rows])
        if notify_channel is None:
            execute(connection, sql, [text], deferrable=True)
        else:
            carried = json.dumps({task_id: notice.decode() for task_id, notice in (notices or {}).items()})
            execute(connection, f"WITH written AS ({sql} RETURNING task_id) SELECT pg_notify(%s, "
                    "written.task_id || COALESCE(E'\\n' || (%s::json ->> written.task_id), '')) FROM written",
                    [text, notify_channel, carried], deferrable=True)
        return
    try:
        execute(connection, sql, _row_params(connection, rows))
    except UnicodeEncodeError:  # a lone surrogate in a text column (sqlite3 encodes it as it binds)
        execute(connection, sql, _row_params(connection, [_storable_row(row) for row in rows]))


def read(task_id: str):
    """The TaskResult row of a task, or None, with SQL built once: get() calls this in a loop,
    and the ORM's per-query compilation costs more than the database round trip."""
    connection = connections[router.db_for_read(schema().model)]
    reader = _readers.get(connection.vendor)
    if reader is None:
        reader = _readers[connection.vendor] = _RowReader(connection)
    return reader.read(connection, task_id)


def _row_params(connection, rows: list[dict[str, Any]]) -> list:
    table = schema()
    instances = [table.model(**row) for row in rows]
    return [f.get_db_prep_save(f.pre_save(row, True), connection) for row in instances for f in table.columns]


def _storable_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row with every value the database would refuse (NUL, lone surrogates) escaped."""
    json_columns = schema().json_columns
    return {name: (serialization.storable(value) if name in json_columns
                   else serialization.escape_text(value) if type(value) is str else value)
            for name, value in row.items()}


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a TaskResult column")


_rows_json = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode
_upsert_sqls: dict[tuple, str] = {}


def _upsert_sql(connection, count: int, fields: tuple[str, ...], over_finished: bool = True) -> str:
    postgres = connection.vendor == "postgresql"
    cache_key = (connection.vendor, fields, None if postgres else count, over_finished)
    sql = _upsert_sqls.get(cache_key)
    if sql is None:
        table = schema()
        qn = connection.ops.quote_name
        updates = [table.meta.get_field(name).column for name in fields]  # type: ignore[union-attr]  # columns
        conflict = connection.ops.on_conflict_suffix_sql(
            table.columns, OnConflict.UPDATE if fields else OnConflict.IGNORE, updates,
            [table.meta.get_field("task_id").column])
        if fields:  # REVOKED is final: a late result, a retry or update_state() never overwrites it
            kept = [states.REVOKED] if over_finished else [states.REVOKED, states.SUCCESS, states.FAILURE]
            conflict += f" WHERE {qn(table.meta.db_table)}.{qn('state')} NOT IN ({', '.join(repr(s) for s in kept)})"
        names = ", ".join(qn(f.column) for f in table.columns)
        if postgres:  # keys of the JSON objects are attribute names, which equal the column names here
            record = ", ".join(f"{qn(f.attname)} {f.db_type(connection)}" for f in table.columns)
            selected = ", ".join(qn(f.attname) for f in table.columns)
            values = f"SELECT {selected} FROM json_to_recordset(%s::json) AS r({record})"
        else:
            values = "VALUES " + ", ".join([f"({', '.join(['%s'] * len(table.columns))})"] * count)
        sql = _upsert_sqls[cache_key] = f"INSERT INTO {qn(table.meta.db_table)} ({names}) {values} {conflict}"
    return sql


class _RowReader:
    """SELECT of one row by task id, with the column converters looked up once."""

    def __init__(self, connection):
        table = schema()
        fields = table.meta.concrete_fields
        qn = connection.ops.quote_name
        self.sql = (f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {qn(table.meta.db_table)} "
                    f"WHERE {qn('task_id')} = %s")
        self.names = [f.attname for f in fields]
        self.columns = [(field, field.get_col(table.meta.db_table)) for field in fields]
        self.converters = [[*connection.ops.get_db_converters(col), *field.get_db_converters(connection)]
                           for field, col in self.columns]

    def read(self, connection, task_id: str):
        row = execute(connection, self.sql, [task_id], fetch_one=True)
        if row is None:
            return None
        values = []
        for value, converters, (_, col) in zip(row, self.converters, self.columns, strict=True):
            for converter in converters:
                value = converter(value, col, connection)
            values.append(value)
        return schema().model.from_db(connection.alias, self.names, values)


_readers: dict[str, _RowReader] = {}
