"""The transactional outbox: a message sent inside `atomic()` is also written to the database in
that transaction. After the commit it is published at once and its row deleted; if the broker is
down then, the row stays, and workers publish it once the broker is back (`relay`)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connections, transaction
from django.utils import timezone

from .brokers import Broker
from .conf import get_settings
from .models import OutboxMessage

logger = logging.getLogger("taskqueue.producer")
RELAY_BATCH = 500

Item = tuple[str, str, bytes, float | None, int]  # queue, key, body, eta, priority, as Broker.publish_many


def stage(items: list[Item], alias: str) -> list[int]:
    """Write the messages in the current transaction of `alias`; returns their row ids. One
    statement built by hand: it is on the path of every delay() inside a transaction, where the
    ORM's bulk_create costs more than the round trip."""
    connection = connections[alias]
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [value for queue, key, body, eta, priority in items
              for value in (key, queue, body.decode("utf-8"), eta, priority, now)]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(connection, len(items)), params)
        return [pk for (pk,) in cursor.fetchall()]


_COLUMNS = ("key", "queue", "body", "eta", "priority", "date_created")


def _insert_sql(connection, count: int) -> str:
    qn = connection.ops.quote_name
    row = f"({', '.join(['%s'] * len(_COLUMNS))})"
    return (f"INSERT INTO {qn(OutboxMessage._meta.db_table)} ({', '.join(map(qn, _COLUMNS))}) "
            f"VALUES {', '.join([row] * count)} RETURNING {qn('id')}")


def published(ids: list[int], alias: str) -> None:
    """The broker has these messages: their rows are done.

    On PostgreSQL the delete commits without waiting for its WAL flush (one round trip, not a
    millisecond's fsync): were it lost in a crash, a worker would publish the message again, which
    at-least-once delivery allows."""
    connection = connections[alias]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        OutboxMessage.objects.using(alias).filter(pk__in=ids).delete()
        return
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    listed = ",".join(str(int(pk)) for pk in ids)  # our own integer keys: safe to write inline
    with connection.cursor() as cursor:  # no parameters: one simple query, several statements
        cursor.execute(f"BEGIN; SET LOCAL synchronous_commit TO OFF; DELETE FROM {table} WHERE id IN ({listed}); "
                       "COMMIT")


def relay(broker: Broker, alias: str = "default") -> int:
    """Publish what was committed but never reached the broker; returns how many. Only rows older
    than TASKQUEUE_OUTBOX_RELAY_AFTER, so as not to race the process that committed them (a race
    would at worst send a message twice, which at-least-once delivery allows)."""
    cutoff = timezone.now() - timedelta(seconds=get_settings().OUTBOX_RELAY_AFTER)
    waiting = OutboxMessage.objects.using(alias).filter(date_created__lt=cutoff)
    if not waiting.exists():  # the usual answer, without taking a lock
        return 0
    with transaction.atomic(using=alias):
        rows = list(waiting.select_for_update(skip_locked=True).order_by("pk")[:RELAY_BATCH])
        if rows:
            broker.publish_many([(row.queue, row.key, row.body.encode("utf-8"), row.eta, row.priority)
                                 for row in rows])
            OutboxMessage.objects.using(alias).filter(pk__in=[row.pk for row in rows]).delete()
    if rows:
        logger.warning("Published %d message(s) from the outbox that the broker missed at commit", len(rows))
    return len(rows)
