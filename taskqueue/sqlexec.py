"""Running a hot statement: on PostgreSQL with psycopg 3, an autocommitted write is a statement
prepared once per connection and run through libpq's PQexecPrepared; a read, and a write inside a
transaction, go through a psycopg cursor with server-side binding. TASKQUEUE_PREPARED_STATEMENTS =
False sends everything through Django's cursor (PgBouncer before 1.21 in transaction mode cannot
keep prepared statements). Used by `hotsql` (the result upsert and read) and the database broker.

A worker writes its results `visible_first`: committed without waiting for the disk (visible to
waiters at once), then, before it acks them, `make_durable` waits for one flush of the WAL that
covers them all. The result is shown as soon as it is committed, and acked only once it is on disk.
On SQLite a worker's writes before an ack commit `unsynced`, the WAL keeping them in order.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import OperationalError

from .conf import get_settings

logger = logging.getLogger("taskqueue.store")


def execute(connection, sql: str, params: list, fetch_one: bool = False, *, deferrable: bool = False):
    """Run a hot statement: through libpq when it is an autocommitted write on psycopg 3, through a
    psycopg cursor (prepared only if OPTIONS set psycopg's "prepare_threshold"; Django turns it
    off) otherwise, or through Django's cursor when TASKQUEUE_PREPARED_STATEMENTS is False.
    `deferrable`: a result write, which commits `visible_first` inside such a block."""
    if connection.vendor == "postgresql" and get_settings().PREPARED_STATEMENTS:
        import psycopg  # only installed with PostgreSQL

        connection.ensure_connection()
        raw = connection.connection
        if isinstance(raw, psycopg.Connection):
            with connection.wrap_database_errors:
                if not fetch_one and _autocommitted_write(raw, params):
                    deferred = deferrable and _deferring()
                    rider = _take_rider(connection) if deferred else None
                    _exec_prepared(raw, sql, params, deferred, rider)
                    if rider is not None:
                        rider.rode = True  # its ack commits with the write: nothing to flush before it
                    elif deferred:
                        _durability.unflushed = {**getattr(_durability, "unflushed", {}), connection: raw}
                    return None
                with psycopg.Cursor(raw) as cursor:
                    cursor.execute(sql, params, prepare=True)
                    return cursor.fetchone() if fetch_one else None
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if fetch_one else None


def _autocommitted_write(raw, params: list) -> bool:
    """Whether libpq can run this write directly. Not inside a transaction: psycopg sends the
    BEGIN of Django's atomic() lazily, before the first statement of a cursor."""
    import psycopg  # only installed with PostgreSQL

    return (raw.autocommit and raw.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
            and all(type(param) is str for param in params))


_statement_names: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # connection -> {sql: name}
_NO_SUCH_STATEMENT = b"26000"  # invalid_sql_statement_name
_name_numbers = itertools.count()  # a statement name is never used twice in a process


def _exec_prepared(raw, sql: str, params: list[str], visible_first: bool = False,
                   rider: Rider | None = None) -> None:
    """A write whose rows back (if any) are not read, through libpq's PQexecPrepared (which
    releases the GIL while it waits). psycopg's cursor adds about 0.1 ms of Python and polling to
    each execute: as much as the server spends on a one-row upsert, on the path of every result.
    Visible first, with the `rider`'s statement after it in the same transaction."""
    import psycopg  # only installed with PostgreSQL

    names = _statement_names.setdefault(raw, {})
    writes = [(sql, params)] + ([(rider.sql, rider.params)] if rider is not None else [])
    for again in (False, True):
        for text, _ in writes:
            if again or text not in names:  # again: under new names, as the server may have dropped only some
                names[text] = f"taskqueue_write_{next(_name_numbers)}".encode()
                _raise_if_failed(raw, raw.pgconn.prepare(names[text], _numbered_placeholders(text)))
        named = [(names[text], [value.encode() for value in values]) for text, values in writes]
        result = _run_visible_first(raw, named) if visible_first else raw.pgconn.exec_prepared(*named[0])
        if again or result.error_field(psycopg.pq.DiagnosticField.SQLSTATE) != _NO_SUCH_STATEMENT:
            _raise_if_failed(raw, result)
            return
        # Dropped on the server, so nothing ran: psycopg sends DEALLOCATE ALL after a rollback
        # when it prepares statements itself (OPTIONS "prepare_threshold"), a pooler DISCARD ALL.


def _run_visible_first(raw, named: list[tuple[bytes, list[bytes]]]):
    """The prepared writes in one transaction that commits without waiting for its WAL to reach
    the disk (one simple query: the SET LOCAL and the EXECUTEs share its implicit transaction)."""
    import psycopg  # only installed with PostgreSQL

    escape = psycopg.pq.Escaping(raw.pgconn).escape_literal
    return raw.pgconn.exec_(b"SET LOCAL synchronous_commit TO off" + b"".join(
        b"; EXECUTE " + name + b"(" + b", ".join(escape(value) for value in values) + b")"
        for name, values in named))


# -- SQLite: a write that does not queue behind the lock for milliseconds ------------------------

_FIRST_PAUSE, _LONGEST_PAUSE = 0.00005, 0.0005  # seconds


def execute_promptly(connection, sql: str, params: list, fetch: bool = False) -> list | None:
    """An autocommitted write on SQLite (the database broker's publish and claim) that, while
    another connection holds the write lock, tries again every 50-500 µs until the connection's
    busy timeout. SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries: a producer met
    that way by workers that take the lock briefly but often falls ever further behind them, and a
    consumer woken by a ring meets the sender still writing. A worker's result writes and acks keep
    the busy handler: retried as promptly, they took the lock from the producer (in the benchmark
    the throughput halved). It runs on the sqlite3 connection itself (Django's cursor adds a fifth
    to a one-row insert). Inside a transaction, or on another database, a plain execute (a retry
    there could deadlock). With `fetch`, the rows it returns."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if fetch else None
    connection.ensure_connection()
    raw = connection.connection
    statement = _qmark(sql)
    with connection.wrap_database_errors:
        timeout = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])  # ms: as set now (its "timeout" option)
        raw.execute("PRAGMA busy_timeout = 0")  # SQLITE_BUSY at once: the waiting is done here
        try:
            deadline = time.monotonic() + timeout / 1000
            pause = _FIRST_PAUSE
            while True:  # bounded by the deadline
                try:
                    rows = raw.execute(statement, params).fetchall()
                    return rows if fetch else None
                except sqlite3.OperationalError as exc:
                    if getattr(exc, "sqlite_errorname", "") != "SQLITE_BUSY" or time.monotonic() >= deadline:
                        raise
                time.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)
        finally:
            raw.execute(f"PRAGMA busy_timeout = {timeout}")


_QMARK_SQL: dict[str, str] = {}


def _qmark(sql: str) -> str:
    """A statement of ours written with %s placeholders (as Django's cursor takes), in sqlite3's."""
    converted = _QMARK_SQL.get(sql)
    if converted is None:
        if len(_QMARK_SQL) > 64:  # a publish of n rows is a statement per n: keep the usual few
            _QMARK_SQL.clear()
        converted = _QMARK_SQL[sql] = sql.replace("%s", "?")
    return converted


# -- SQLite: a worker's own writes without a disk sync each ---------------------------------------

@contextmanager
def unsynced(connection) -> Iterator[None]:
    """Writes on a SQLite `connection` in WAL mode inside this block commit without syncing the
    disk (`synchronous = NORMAL`): the database broker's claims and acks, and a worker's result
    writes where the queue is in the results' file. A power loss can take back the last commits
    of the WAL, never one without those before it (it is replayed in order up to the first frame
    missing): an ack is never kept without the results stored before it, and a claim or an ack
    taken back only makes its message run again. A commit at FULL (a producer's publish) syncs
    everything written before it. Elsewhere, and when already at NORMAL or OFF, nothing changes."""
    if connection.vendor != "sqlite":
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    level = raw.execute("PRAGMA synchronous").fetchone()[0]
    if level <= 1 or not _in_wal_mode(connection, raw):
        yield
        return
    raw.execute("PRAGMA synchronous = NORMAL")
    try:
        yield
    finally:
        if connection.connection is raw:  # a connection opened since starts at the default
            raw.execute(f"PRAGMA synchronous = {int(level)}")


def _in_wal_mode(connection, raw) -> bool:
    """Whether this SQLite connection's file is in WAL mode (read once per connection: it stays)."""
    known = getattr(connection, "_taskqueue_wal", None)
    if known is None or known[0] is not raw:
        known = connection._taskqueue_wal = (raw, raw.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal")
    return known[1]


# -- visible first, durable before the ack ---------------------------------------------------------

_durability = threading.local()  # .deferring: inside visible_first; .unflushed: {Django connection: raw}
_visible_first_works = True  # False once the server refused the flush (see make_durable)
# A WAL record in its own transaction: its synchronous commit waits until the WAL up to it, so every
# earlier commit of the server too, is flushed (a transaction that writes no WAL is not waited for).
_FLUSH = b"SELECT pg_logical_emit_message(true, 'taskqueue', '')"


def _deferring() -> bool:
    return _visible_first_works and getattr(_durability, "deferring", False)


class Rider:
    """A statement for the same transaction as the next result write on `connection` (the
    database broker's ack, when the queue and the results share a database): outcome and ack
    commit together, neither waiting for the disk, as a crash then loses both or neither, and a
    message not acked runs again. `rode` tells whether it went with a write."""

    def __init__(self, connection, sql: str, params: list[str]):
        self.connection, self.sql, self.params = connection, sql, params
        self.rode = False


def _take_rider(connection) -> Rider | None:
    """The block's rider, for its first deferred write only (on its connection): if that write
    fails, the rider is not tried with the next one (the one-by-one writes after a failed batch)."""
    rider = getattr(_durability, "rider", None)
    _durability.rider = None
    return rider if rider is not None and rider.connection is connection else None


@contextmanager
def visible_first(rider: Rider | None = None) -> Iterator[None]:
    """Autocommitted result writes on PostgreSQL inside this block commit without waiting for the
    disk; the caller must call `make_durable` before it acks the messages they belong to, unless
    its `rider` (the ack) went with the write (`rider.rode`)."""
    _durability.deferring, _durability.rider = True, rider
    try:
        yield
    finally:
        _durability.deferring, _durability.rider = False, None


def make_durable() -> bool:
    """Wait until the writes made `visible_first` on this thread are on disk. False if the server
    refused to be asked (the function is not allowed there): from then on each write waits for the
    disk itself, and the caller must write those again. A lost connection raises (an outage): the
    caller writes them again too, as the server may have lost them."""
    global _visible_first_works
    unflushed, _durability.unflushed = getattr(_durability, "unflushed", None), {}
    if not unflushed:
        return True
    import psycopg  # only installed with PostgreSQL

    for connection, raw in unflushed.items():
        if connection.connection is not raw:  # reconnected since: what the old one wrote may be lost
            raise OperationalError("the connection was replaced before its results were flushed")
        with connection.wrap_database_errors:
            try:
                _raise_if_failed(raw, raw.pgconn.exec_(_FLUSH))
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                _visible_first_works = False
                logger.warning("Each result write now waits for the disk: the server refused "
                               "pg_logical_emit_message (%s)", exc)
                return False
    return True


def _raise_if_failed(raw, result) -> None:
    import psycopg  # only installed with PostgreSQL

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
