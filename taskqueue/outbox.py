"""The transactional outbox: a message sent inside `atomic()` is also written to the database in
that transaction. After the commit it is published at once, and the broker remembers that it was
(`remember`), which costs the sender nothing more. Workers clear rows older than
TASKQUEUE_OUTBOX_RELAY_AFTER (`relay`): a row whose message the broker remembers is just deleted,
any other (the broker was down at commit, or the sender died first) is published."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connections, transaction
from django.utils import timezone

from .brokers import Broker, Outgoing
from .conf import get_settings
from .models import OutboxMessage

logger = logging.getLogger("taskqueue.producer")
RELAY_BATCH = 500

def stage(items: list[Outgoing], alias: str) -> None:
    """Write the messages in the current transaction of `alias`: one statement built by hand, as it
    is on the path of every delay() inside a transaction, where bulk_create costs more than the
    round trip."""
    connection = connections[alias]
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [value for queue, key, body, eta, priority in items
              for value in (key, queue, body.decode("utf-8"), eta, priority, now)]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(connection, len(items)), params)


_COLUMNS = ("key", "queue", "body", "eta", "priority", "date_created")


def _insert_sql(connection, count: int) -> str:
    qn = connection.ops.quote_name
    row = f"({', '.join(['%s'] * len(_COLUMNS))})"
    return (f"INSERT INTO {qn(OutboxMessage._meta.db_table)} ({', '.join(map(qn, _COLUMNS))}) "
            f"VALUES {', '.join([row] * count)}")


def remember_for() -> float:
    """How long the broker remembers that it has an outbox message: well past the moment workers
    clear its row (TASKQUEUE_OUTBOX_RELAY_AFTER, then a relay every few seconds)."""
    return max(60.0, 4 * get_settings().OUTBOX_RELAY_AFTER)


def relay(broker: Broker, alias: str = "default") -> int:
    """Clear the outbox: delete the rows whose messages the broker has, publish the others; returns
    how many were published. Only rows older than TASKQUEUE_OUTBOX_RELAY_AFTER, so as not to race
    the process that committed them (a race would at worst send a message twice, which
    at-least-once delivery allows)."""
    cutoff = timezone.now() - timedelta(seconds=get_settings().OUTBOX_RELAY_AFTER)
    waiting = OutboxMessage.objects.using(alias).filter(date_created__lt=cutoff)
    if not waiting.exists():  # nothing old enough, without taking a lock
        return 0
    with transaction.atomic(using=alias):
        rows = list(waiting.select_for_update(skip_locked=True).order_by("pk")[:RELAY_BATCH])
        known = broker.inspect([row.key for row in rows]).published if rows else set()
        missed = [row for row in rows if row.key not in known]
        if missed:
            broker.publish([Outgoing(row.queue, row.key, row.body.encode("utf-8"), row.eta, row.priority)
                            for row in missed], remember=remember_for())
        if rows:
            OutboxMessage.objects.using(alias).filter(pk__in=[row.pk for row in rows]).delete()
    if missed:
        logger.warning("Published %d message(s) from the outbox that the broker missed at commit", len(missed))
    return len(missed)
