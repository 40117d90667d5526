"""The database broker (`django://`): queues in the project's own database.

Tables: QueuedMessage (one row per message; `consumer_id` set while leased), BrokerConsumer
(heartbeats), CancelledTask (revoked ids), TaskLock (lock_key mutexes).

A publish is one INSERT (on PostgreSQL with the NOTIFY of its queues) and a reserve one UPDATE
that claims rows and returns them, with whether each task was revoked (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so consumers never wait on each other; on SQLite the UPDATE holds the write lock, and
before SQLite 3.35 a SELECT reads the claimed rows back). No statement writes two tables and no transaction spans
two writes, so the broker never waits on itself in a lock cycle (a TRUNCATE of every table, as
between tests, can still meet a reserve: PostgreSQL then fails one of the two). An idle consumer
sleeps on LISTEN/NOTIFY on PostgreSQL, so a new message is taken within milliseconds; on SQLite on
a `doorbell` (a Unix socket per waiting thread, rung after the commit), which serves the processes
of one machine, as SQLite itself does.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Count, F, Min, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .. import sqlexec
from ..doorbell import Doorbell
from ..models import BrokerConsumer, CancelledTask, QueuedMessage, TaskLock, TaskResult
from ..pglisten import Listener
from . import dbstatements as statements
from .base import Broker, Delivery, Holdings, Leases, Outgoing
from .dbsweep import Sweeper

SQLITE_POLL = 0.02  # where no doorbell can be made (no Unix sockets)
QUIET_LOOK_EVERY = 5.0  # seconds: an idle consumer that heard nothing still looks this often
_IN_BATCH = 500
_ROW_COLUMNS = ("key", "task_id", "queue", "body", "priority", "available_at", "rank", "date_created")


@dataclass(frozen=True)
class _Quiet:
    """What a consumer's last reserve learnt when it heard nothing: no message of `queues` was
    ready and none is due before `due_at` (monotonic). Good while its LISTEN stayed unbroken, and
    until `look_at`."""

    queues: tuple[str, ...]
    due_at: float
    look_at: float
    generation: int

    def holds(self, queues: list[str], generation: int) -> bool:
        return (self.queues == tuple(queues) and self.generation == generation
                and time.monotonic() < min(self.due_at, self.look_at))


class DatabaseBroker(Broker):
    """Queues in Django models; the guarantees of the Redis broker, on PostgreSQL or SQLite."""

    def __init__(self, alias: str = "default", prefix: str = "taskqueue", priority_aging: float = 60.0):
        self.alias = alias
        self.priority_aging = priority_aging
        self.channel = f"{prefix}_queues"
        self._listener = Listener(alias, self.channel)
        self._doorbells: dict[str, Doorbell] = {}
        self._quiet: dict[str, _Quiet] = {}  # consumer id -> what its last empty reserve learnt
        self._sweeper: Sweeper | None = None  # PostgreSQL: vacuums the queue table when its dead rows pile up

    @property
    def connection(self):
        return connections[self.alias]

    @property
    def is_postgres(self) -> bool:
        return self.connection.vendor == "postgresql"

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, messages: Sequence[Outgoing], *, remember: float | None = None) -> None:
        # `remember` is for the outbox, which a broker in the database does not need.
        now = timezone.now()
        rows = []  # in the column order of _ROW_COLUMNS
        for m in messages:
            available_at = _when(m.eta) if m.eta else now
            priority = min(max(m.priority, 0), 9)
            rows.append((m.key, m.key.split("~", 1)[0], m.queue, m.body.decode("utf-8"), priority, available_at,
                         available_at.timestamp() - priority * self.priority_aging, now))
        if self.is_postgres:
            self._publish_postgres(rows)
            return
        # A key already queued or in flight is not queued twice (re-sent follow-ups). One statement
        # in autocommit is one transaction (one disk sync); more rows than one takes share one.
        connection = self.connection
        stored_now = connection.ops.adapt_datetimefield_value(now)
        with transaction.atomic(using=self.alias) if len(rows) > _IN_BATCH else contextlib.nullcontext():
            for start in range(0, len(rows), _IN_BATCH):
                chunk = rows[start:start + _IN_BATCH]
                sqlexec.execute_promptly(  # a producer is not held back milliseconds by busy workers
                    connection, statements.insert_ignoring_known_keys(connection, len(chunk)),
                    [value for key, task_id, queue, body, priority, available_at, rank, _ in chunk for value in (
                        key, task_id, queue, body, priority,
                        stored_now if available_at is now else connection.ops.adapt_datetimefield_value(available_at),
                        rank, stored_now)])
            self._notify({row[2] for row in rows})

    def _publish_postgres(self, rows: list[tuple]) -> None:
        """One statement, so one round trip and (outside a transaction) one commit: the rows go in
        as one JSON document, and each queue that got a new message is notified."""
        document = json.dumps([dict(zip(_ROW_COLUMNS, row, strict=True)) for row in rows], default=str)
        sqlexec.execute(self.connection, statements.publish(self.connection), [document, self.channel])

    def _notify(self, queues: set[str]) -> None:
        if not queues:
            return
        if not self.is_postgres:
            if self.connection.in_atomic_block:
                transaction.on_commit(lambda: self._doorbell().ring(queues), using=self.alias)
            else:
                self._doorbell().ring(queues)
            return
        with self.connection.cursor() as cursor:
            for queue in sorted(queues):
                cursor.execute("SELECT pg_notify(%s, %s)", [self.channel, queue])

    def _doorbell(self) -> Doorbell:
        """The doorbell of this database file (the name is read each time: tests switch databases)."""
        name = str(self.connection.settings_dict["NAME"])
        if name not in self._doorbells:
            self._doorbells[name] = Doorbell(f"{os.path.abspath(name)}:{self.channel}")
        return self._doorbells[name]

    # -- consuming -----------------------------------------------------------------------------

    def reserve(self, consumer_id: str, queues: list[str], *, count: int = 1,
                timeout: float = 1.0) -> list[Delivery]:
        if not queues:
            time.sleep(max(0.0, timeout))
            return []
        quiet = None
        if self.is_postgres:
            # Listening before looking, so no NOTIFY falls between the two; and reading what came
            # before, unread while messages were there to take: left unread, they fill the socket
            # and the server's backend waits to send them inside a transaction, holding back the
            # xmin horizon (no vacuum anywhere; dead rows pile up at the head of the queue).
            heard = self._listener.forget_earlier(queues)
            quiet = self._quiet.pop(consumer_id, None)
            if quiet is not None and (heard or not quiet.holds(queues, self._listener.generation)):
                quiet = None
        else:
            self._doorbell().listen()  # the same, for a ring
        # Nothing heard since the last reserve found nothing to take: no look (every publish,
        # release and requeue notifies) until something is due or QUIET_LOOK_EVERY has passed.
        deliveries = [] if quiet is not None else self._take(consumer_id, queues, count)
        look_at = quiet.look_at if quiet is not None else time.monotonic() + QUIET_LOOK_EVERY
        due_at = quiet.due_at if quiet is not None else None
        deadline = time.monotonic() + max(0.0, timeout)
        while not deliveries and (left := deadline - time.monotonic()) > 0:
            if due_at is None:
                due_at = time.monotonic() + self._until_next_due(queues)
            due_in = due_at - time.monotonic()
            if not self._wait(queues, min(left, due_in)) and due_in > left:
                if self.is_postgres:  # slept to the deadline and heard nothing: remember it
                    self._quiet[consumer_id] = _Quiet(tuple(queues), due_at, look_at, self._listener.generation)
                break
            deliveries = self._take(consumer_id, queues, 1)
            due_at = None
        return deliveries

    def _take(self, consumer_id: str, queues: list[str], count: int) -> list[Delivery]:
        postgres = self.is_postgres
        if postgres or sqlite3.sqlite_version_info >= (3, 35):  # UPDATE ... RETURNING
            rows = self._claim_returning(consumer_id, queues, count)
        else:
            rows = self._claim(consumer_id, queues, count)
        if rows and postgres:
            if self._sweeper is None:
                self._sweeper = Sweeper(self.alias, statements.quoted_table(self.connection, QueuedMessage))
            self._sweeper.taken(len(rows), self.connection)
        order = {queue: index for index, queue in enumerate(queues)}
        rows.sort(key=lambda row: (order.get(row[3], 0), row[5], row[0]))
        return [Delivery(key=key, body=body.encode("utf-8"), queue=queue, consumer_id=consumer_id,
                         redeliveries=redeliveries, revoked=bool(revoked))
                for _, key, body, queue, redeliveries, _, _, revoked in rows]

    def _claim_returning(self, consumer_id: str, queues: list[str], count: int) -> list[tuple]:
        """Claim up to `count` messages and read them back in one statement per queue. Its commit
        does not wait for the disk (PostgreSQL: `synchronous_commit` off; SQLite: `sqlexec.unsynced`):
        a claim lost in a crash only makes the message available again, which at-least-once allows."""
        sql = statements.claim(self.connection)
        now = self.connection.ops.adapt_datetimefield_value(timezone.now())
        rows: list[tuple] = []
        if self.is_postgres:
            with self._client_cursor() as cursor:
                for queue in queues:
                    cursor.execute(sql, [consumer_id, now, queue, now, count - len(rows), now])
                    cursor.nextset()  # past the SET LOCAL
                    rows += cursor.fetchall()
                    if len(rows) >= count:
                        break
        else:
            with sqlexec.unsynced(self.connection):
                for queue in queues:
                    # promptly: a consumer woken by a ring often meets the sender still writing
                    rows += sqlexec.execute_promptly(self.connection, sql, [
                        consumer_id, now, queue, now, count - len(rows), now], fetch=True) or []
                    if len(rows) >= count:
                        break
        return rows

    def _client_cursor(self):
        """On PostgreSQL a client-side binding cursor: the claim (and `record_holding`) is two
        statements in one query."""
        import psycopg  # only installed with PostgreSQL

        self.connection.ensure_connection()
        return statements.wrapped(self.connection, psycopg.ClientCursor(self.connection.connection))

    def record_holding(self, consumer_id: str, holding: list | None, task_ids: Sequence[str] = ()) -> set[str]:
        """A RabbitMQ consumer's row, its heartbeat and the [queue, key] pairs it holds (`holding`;
        None: unchanged), for the operator's pages; returns which of `task_ids` (those it just took)
        are revoked. On PostgreSQL one round trip, whose commit does not wait for the disk (as a
        claim's): the row is written again at the consumer's next change, and a crash that takes it
        back loses nothing else. Inside a transaction (a tool's reserve in a request) the plain
        write joins it."""
        now = timezone.now()
        if self.is_postgres and self.connection.get_autocommit() and not self.connection.in_atomic_block:
            sql, params = statements.revoked_among(self.connection), [list(task_ids), now]
            if holding is not None:
                sql, params = statements.record_holding(self.connection) + "; " + sql, [
                    consumer_id, now, json.dumps(holding), *params]
            with self._client_cursor() as cursor:
                cursor.execute(sql, params)
                while cursor.nextset():  # past the SET LOCAL and the upsert, to the SELECT's rows
                    pass
                return {task_id for task_id, in cursor.fetchall()}
        if holding is not None:
            with sqlexec.unsynced(self.connection):
                BrokerConsumer.objects.using(self.alias).bulk_create(
                    [BrokerConsumer(consumer_id=consumer_id, last_heartbeat=now, holding=holding)],
                    update_conflicts=True, unique_fields=["consumer_id"], update_fields=["last_heartbeat", "holding"])
        if not task_ids:
            return set()
        return set(CancelledTask.objects.using(self.alias).filter(task_id__in=set(task_ids), expires_at__gt=now)
                   .values_list("task_id", flat=True))

    def _claim(self, consumer_id: str, queues: list[str], count: int) -> list[tuple]:
        claim = uuid.uuid4().hex
        table = statements.quoted_table(self.connection, QueuedMessage)
        now = self.connection.ops.adapt_datetimefield_value(timezone.now())
        taken = 0
        with sqlexec.unsynced(self.connection), self.connection.cursor() as cursor:
            for queue in queues:
                cursor.execute(
                    f"UPDATE {table} SET consumer_id = %s, claim = %s, reserved_at = %s WHERE id IN ("
                    f"SELECT id FROM {table} WHERE queue = %s AND consumer_id IS NULL AND available_at <= %s"
                    f" ORDER BY rank, id LIMIT %s)",
                    [consumer_id, claim, now, queue, now, count - taken])
                taken += cursor.rowcount
                if taken >= count:
                    break
        if not taken:
            return []
        rows = list(QueuedMessage.objects.using(self.alias).filter(claim=claim).values_list(
            "id", "key", "body", "queue", "redeliveries", "rank", "task_id"))
        cancelled = set(CancelledTask.objects.using(self.alias).filter(
            task_id__in={row[6] for row in rows}, expires_at__gt=timezone.now()).values_list("task_id", flat=True))
        return [(*row, row[6] in cancelled) for row in rows]

    def _until_next_due(self, queues: list[str]) -> float:
        """Seconds until the next waiting message of `queues` is due (infinity if none waits): one
        plain statement."""
        table = statements.quoted_table(self.connection, QueuedMessage)
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT MIN(available_at) FROM {table} WHERE consumer_id IS NULL AND queue IN "
                           f"({', '.join(['%s'] * len(queues))})", queues)
            value = cursor.fetchone()[0]
        if value is None:
            return math.inf
        if isinstance(value, str):  # SQLite
            value = parse_datetime(value)
        if settings.USE_TZ and timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
        return max(0.0, (value - timezone.now()).total_seconds())

    def _wait(self, queues: list[str], seconds: float) -> bool:
        """Sleep until one of `queues` is notified (True) or `seconds` pass (False); True when
        polling, as then a message may have come meanwhile."""
        if seconds <= 0:
            return True
        if self.is_postgres:
            return self._listener.wait_for(queues, seconds) is not None
        if self._doorbell().listen():
            return self._doorbell().wait_for(queues, seconds)
        time.sleep(min(seconds, SQLITE_POLL))
        return True

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        keys = [d.key for d in deliveries]
        if self.is_postgres and keys:  # one statement for any number, prepared once per connection
            sqlexec.execute(self.connection, statements.ack(self.connection), [json.dumps(keys)])
            return
        with sqlexec.unsynced(self.connection):
            for start in range(0, len(keys), _IN_BATCH):
                QueuedMessage.objects.using(self.alias).filter(key__in=keys[start:start + _IN_BATCH]).delete()

    def writes_before_ack(self) -> contextlib.AbstractContextManager[None]:
        """On SQLite with the results in the queue's file: commits without a disk sync (see Broker)."""
        if self.is_postgres or router.db_for_write(TaskResult) != self.alias:
            return contextlib.nullcontext()
        return sqlexec.unsynced(self.connection)

    def ack_rider(self, deliveries: Sequence[Delivery]) -> sqlexec.Rider | None:
        """On PostgreSQL, the ack as a statement for the results' write (see Broker)."""
        if not self.is_postgres or not deliveries:
            return None
        keys = json.dumps([delivery.key for delivery in deliveries])
        return sqlexec.Rider(self.connection, statements.ack(self.connection), [keys])

    def release(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        """Back in the place they were taken from (their rank), visible at once or after `delay`: one
        statement per consumer."""
        by_consumer: dict[str, list[str]] = {}
        for delivery in deliveries:
            by_consumer.setdefault(delivery.consumer_id, []).append(delivery.key)
        for consumer_id, keys in by_consumer.items():
            QueuedMessage.objects.using(self.alias).filter(key__in=keys, consumer_id=consumer_id).update(
                consumer_id=None, claim=None, reserved_at=None, available_at=timezone.now() + timedelta(seconds=delay))
        if deliveries:  # later too: an idle consumer that knows when its next message is due learns it
            self._notify({delivery.queue for delivery in deliveries})

    # -- leases --------------------------------------------------------------------------------

    def _reconnect_if_broken(self) -> None:
        """Close a connection that broke (a database restart), so the next query opens a new one:
        Django only does this between requests, and a supervisor never ends its "request"."""
        connection = self.connection
        if connection.errors_occurred and connection.connection is not None and not connection.is_usable():
            try:
                connection.close()
            except Exception:  # its server is gone: nothing left to close properly
                connection.connection = None
        connection.errors_occurred = False

    def leases(self, alive: Sequence[str] = (), *, requeue: Sequence[str] = (), stale_after: float | None = None,
               redelivered: bool = True, running: Sequence[str] = ()) -> Leases:
        self._reconnect_if_broken()
        consumers = BrokerConsumer.objects.using(self.alias)
        if alive:
            now = timezone.now()
            consumers.bulk_create([BrokerConsumer(consumer_id=cid, last_heartbeat=now) for cid in alive],
                                  update_conflicts=True, unique_fields=["consumer_id"],
                                  update_fields=["last_heartbeat"])
        targets = set(requeue) | (self._silent(stale_after) if stale_after is not None else set())
        requeued = self._requeue(targets, redelivered) if targets else 0
        terminations = dict(CancelledTask.objects.using(self.alias).filter(
            task_id__in=running, expires_at__gt=timezone.now()).exclude(signal="").values_list("task_id", "signal")) \
            if running else {}
        return Leases(requeued, terminations)

    def _silent(self, stale_after: float) -> set[str]:
        """Consumers silent for `stale_after` s, and those holding messages that longer without ever
        renewing their lease (they died before their first heartbeat)."""
        consumers = BrokerConsumer.objects.using(self.alias)
        cutoff = timezone.now() - timedelta(seconds=stale_after)
        silent = set(consumers.filter(last_heartbeat__lt=cutoff).values_list("consumer_id", flat=True))
        holders: set[str] = set(
            QueuedMessage.objects.using(self.alias).filter(consumer_id__isnull=False, reserved_at__lt=cutoff)
            .values_list("consumer_id", flat=True).distinct())  # type: ignore[arg-type]  # not NULL, as filtered
        live = set(consumers.filter(consumer_id__in=holders).values_list("consumer_id", flat=True))
        return silent | (holders - live)

    def _requeue(self, consumer_ids: set[str], redelivered: bool) -> int:
        messages = QueuedMessage.objects.using(self.alias)
        BrokerConsumer.objects.using(self.alias).filter(consumer_id__in=consumer_ids).delete()
        moved = messages.filter(consumer_id__in=consumer_ids).update(
            consumer_id=None, claim=None, reserved_at=None, redeliveries=F("redeliveries") + int(redelivered))
        if moved:
            self._notify(set(messages.filter(consumer_id=None).values_list("queue", flat=True).distinct()))
        return moved

    # -- revocation and operator tools ---------------------------------------------------------

    def cancel(self, task_id: str, ttl: float, *, terminate: str | None = None) -> None:
        CancelledTask.objects.using(self.alias).bulk_create(
            [CancelledTask(task_id=task_id, expires_at=timezone.now() + timedelta(seconds=ttl),
                           signal=terminate or "")],
            update_conflicts=True, unique_fields=["task_id"], update_fields=["expires_at", "signal"])
        # due now: a consumer takes it marked revoked and fails what was to follow it (see `reserve`)
        QueuedMessage.objects.using(self.alias).filter(task_id=task_id, consumer_id=None).update(
            available_at=timezone.now())

    def inspect(self, keys: Sequence[str] = (), *, holders: bool = False, queue: str | None = None,
                offset: int = 0, limit: int = 0) -> Holdings:
        messages = QueuedMessage.objects.using(self.alias)
        now = timezone.now()
        ready = Q(consumer_id=None, available_at__lte=now)
        rows = messages.values("queue").annotate(
            ready=Count("id", filter=ready), inflight=Count("id", filter=Q(consumer_id__isnull=False)),
            later=Count("id", filter=Q(consumer_id=None, available_at__gt=now)),
            oldest=Min("available_at", filter=ready)).order_by("queue")
        sizes = {row["queue"]: row["ready"] for row in rows}
        bodies = {k: body.encode("utf-8") for k, body in messages.filter(key__in=keys).values_list("key", "body")} \
            if keys else {}
        page = list(messages.filter(ready, queue=queue).order_by("rank", "id").values_list("key", flat=True)
                    [offset:offset + limit]) if queue is not None and limit > 0 else []
        if not holders:
            return Holdings(sizes, bodies, waiting=page)
        consumers = {consumer: (now - beat).total_seconds() for consumer, beat in
                     BrokerConsumer.objects.using(self.alias).values_list("consumer_id", "last_heartbeat")}
        held: dict[str, list[str]] = {}
        for k, consumer in messages.filter(consumer_id__isnull=False).values_list("key", "consumer_id"):
            held.setdefault(consumer, []).append(k)  # type: ignore[arg-type]  # not NULL, as filtered
        waiting = messages.filter(consumer_id=None, available_at__gt=now).order_by("available_at")
        return Holdings(sizes, bodies, consumers=consumers, held=held,
                        delayed=[(k, at.timestamp()) for k, at in waiting.values_list("key", "available_at")],
                        inflight={row["queue"]: row["inflight"] for row in rows if row["inflight"]},
                        later={row["queue"]: row["later"] for row in rows if row["later"]},
                        oldest={row["queue"]: row["oldest"].timestamp() for row in rows if row["oldest"]},
                        waiting=page)

    # -- lock_key ------------------------------------------------------------------------------

    def lock(self, name: str, owner: str, stale_after: float | None) -> bool:
        locks = TaskLock.objects.using(self.alias)
        if stale_after is None:
            locks.filter(name=name, owner=owner).delete()
            return True
        try:
            lock, created = locks.get_or_create(name=name, defaults={"owner": owner})
        except IntegrityError:  # another consumer created it first
            return False
        if created or lock.owner == owner:
            return True
        cutoff = timezone.now() - timedelta(seconds=stale_after)
        if BrokerConsumer.objects.using(self.alias).filter(consumer_id=lock.owner, last_heartbeat__gte=cutoff).exists():
            return False
        # the owner's lease ran out: take the lock over, unless someone else just did
        return bool(locks.filter(name=name, owner=lock.owner).update(owner=owner))

    def close(self) -> None:
        self._listener.close()
        for doorbell in self._doorbells.values():
            doorbell.close()


def _when(eta: float) -> datetime:
    return datetime.fromtimestamp(eta, tz=UTC)
