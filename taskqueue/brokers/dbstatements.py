"""The database broker's hand-written statements (`database.py`): built once per database and table."""

from __future__ import annotations

import contextlib

from ..models import BrokerConsumer, CancelledTask, QueuedMessage


def quoted_table(connection, model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@contextlib.contextmanager
def wrapped(connection, cursor):
    """A raw psycopg cursor whose errors come out as Django's, like a Django cursor's."""
    with connection.wrap_database_errors, cursor:
        yield cursor


_CLAIM_SQL: dict[str, str] = {}


def claim(connection) -> str:
    """The claim of a queue's first messages (see `DatabaseBroker._claim_returning`); on PostgreSQL
    consumers skip each other's locked rows. Each row comes back with whether its task was revoked.
    It leaves `claim` empty: read back by RETURNING, the rows need no claim id to be found by (one
    index entry fewer to write per message; only the claim without RETURNING, `_claim`, sets it)."""
    table = quoted_table(connection, QueuedMessage)
    sql = _CLAIM_SQL.get(connection.vendor + table)
    if sql is None:
        postgres = connection.vendor == "postgresql"
        cancelled = quoted_table(connection, CancelledTask)
        sql = _CLAIM_SQL[connection.vendor + table] = (
            ("SET LOCAL synchronous_commit TO off; " if postgres else "")
            + f"UPDATE {table} SET consumer_id = %s, reserved_at = %s WHERE id IN ("
            f"SELECT id FROM {table} WHERE queue = %s AND consumer_id IS NULL AND available_at <= %s "
            f"ORDER BY rank, id LIMIT %s{' FOR UPDATE SKIP LOCKED' if postgres else ''}) "
            "RETURNING id, key, body, queue, redeliveries, rank, task_id, "
            f"EXISTS (SELECT 1 FROM {cancelled} AS c WHERE c.task_id = {table}.task_id AND c.expires_at > %s)")
    return sql


def ack(connection) -> str:
    """The PostgreSQL ack: one statement for any number of keys (one JSON array)."""
    return (f"DELETE FROM {quoted_table(connection, QueuedMessage)} WHERE key IN "
            "(SELECT json_array_elements_text(%s::json))")


_PUBLISH_SQL: dict[str, str] = {}


def publish(connection) -> str:
    """The PostgreSQL publish (see `DatabaseBroker._publish_postgres`); a key already queued or in
    flight is not queued twice (re-sent follow-ups)."""
    table = quoted_table(connection, QueuedMessage)
    sql = _PUBLISH_SQL.get(table)
    if sql is None:
        sql = _PUBLISH_SQL[table] = (
            f"WITH added AS (INSERT INTO {table} (key, task_id, queue, body, priority, available_at, rank, "
            "redeliveries, date_created) SELECT key, task_id, queue, body, priority, available_at, rank, 0, "
            "date_created FROM json_to_recordset(%s::json) AS r(key text, task_id text, queue text, body text, "
            "priority integer, available_at timestamptz, rank double precision, date_created timestamptz) "
            "ON CONFLICT DO NOTHING RETURNING queue) "
            "SELECT pg_notify(%s, queue) FROM (SELECT DISTINCT queue FROM added) AS queues")
    return sql


def insert_ignoring_known_keys(connection, rows: int) -> str:
    """SQLite's publish of `rows` messages (a key already queued or in flight is left alone)."""
    return (f"INSERT OR IGNORE INTO {quoted_table(connection, QueuedMessage)} (key, task_id, queue, body, priority, "
            "available_at, rank, redeliveries, date_created) VALUES "
            + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, 0, %s)"] * rows))


def record_holding(connection) -> str:
    """The PostgreSQL upsert of a RabbitMQ consumer's row (see `DatabaseBroker.record_holding`),
    committed without waiting for the disk; `revoked_among` follows it in the same query."""
    table = quoted_table(connection, BrokerConsumer)
    return (f"SET LOCAL synchronous_commit TO off; INSERT INTO {table} (consumer_id, last_heartbeat, holding) "
            "VALUES (%s, %s, %s::jsonb) ON CONFLICT (consumer_id) DO UPDATE "
            "SET last_heartbeat = EXCLUDED.last_heartbeat, holding = EXCLUDED.holding")


def revoked_among(connection) -> str:
    """Which of a list of task ids are revoked now (PostgreSQL)."""
    return f"SELECT task_id FROM {quoted_table(connection, CancelledTask)} WHERE task_id = ANY(%s) AND expires_at > %s"
