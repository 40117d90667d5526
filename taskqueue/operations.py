"""What the admin's queues, workers and dead-letter pages show and do, read from the broker's lease
records and the results database (nothing is written on the path of a message): queue depths and
waiting messages, pause and resume, live and dead workers, warm shutdown, requeueing dead letters."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from . import control, registry, states, store
from .brokers import Outgoing, get_broker
from .conf import get_settings
from .message import Message, decode
from .models import DeadLetter, PausedQueue, WorkerRecord

WORKERS_KEPT = timedelta(days=1)  # a dead worker's record is listed (then deleted) this long after it started


@dataclass
class QueueInfo:
    name: str
    ready: int = 0
    delayed: int | None = 0  # None: the broker cannot tell (RabbitMQ)
    in_flight: int = 0
    oldest_age: float | None = None  # seconds since the message at its head became ready (None: none, or unknown)
    paused: bool = False
    readable: bool = True  # False: a broker that cannot be read by key (RabbitMQ): delayed and age unknown


def queues() -> list[QueueInfo]:
    """Every queue the broker knows, or that is paused, or that a live worker consumes."""
    holdings = get_broker().inspect(holders=True)
    paused = set(PausedQueue.objects.values_list("queue", flat=True))
    consumed = {queue for record in WorkerRecord.objects.filter(started_at__gte=timezone.now() - WORKERS_KEPT)
                for queue in record.queues}
    names = sorted({*holdings.sizes, *holdings.inflight, *holdings.later, *paused, *consumed})
    now = time.time()
    readable = get_broker().reads_by_key
    return [QueueInfo(name, holdings.sizes.get(name, 0), holdings.later.get(name, 0) if readable else None,
                      holdings.inflight.get(name, 0),
                      max(0.0, now - holdings.oldest[name]) if name in holdings.oldest else None, name in paused,
                      readable)
            for name in names]


@dataclass
class WaitingMessage:
    key: str
    message: Message | None  # None: a body that does not decode (the worker will dead-letter it)
    state: str  # of its result row, if any: REVOKED ones are dropped when they reach the head


def waiting(queue: str, offset: int = 0, limit: int = 50) -> list[WaitingMessage]:
    """A page of the messages waiting in `queue`, next to run first, decoded."""
    broker = get_broker()
    keys = broker.inspect(queue=queue, offset=offset, limit=limit).waiting
    bodies = broker.inspect(keys).bodies if keys else {}
    known = store.known_states([key.split("~", 1)[0] for key in keys])
    page = []
    for key in keys:
        try:
            message = decode(bodies[key], get_settings().signing_key)
        except Exception:  # acked meanwhile, or a body the worker will dead-letter
            message = None
        page.append(WaitingMessage(key, message, known.get(key.split("~", 1)[0], (states.PENDING, 0))[0]))
    return page


def task_ids_of(keys: list[str]) -> list[str]:
    """The task ids of these waiting messages' keys (revoke them with revoke_and_report)."""
    return sorted({key.split("~", 1)[0] for key in keys if key})


REVOKED, RUNNING, UNSTOPPABLE, TERMINATED, NOT_STOPPED, FINISHED = (
    "revoked", "running", "unstoppable", "terminated", "not stopped", "finished")


def revoke_and_report(task_ids: list[str], terminate: bool = False, wait: float = 5.0) -> dict[str, str]:
    """Revoke, and say per task what happened: REVOKED (waiting: it will not run); RUNNING (a
    worker had it: marked revoked, but it runs to its end); with `terminate`, TERMINATED (its
    worker let it go within `wait` s), NOT_STOPPED (still held after `wait` s) or UNSTOPPABLE (its
    worker runs tasks in threads, which cannot be killed: it runs to its end); FINISHED (it had
    finished: nothing done)."""
    known = store.known_states(task_ids)
    report = {task_id: FINISHED for task_id in task_ids if known.get(task_id, ("", 0))[0] in states.READY_STATES}
    pending = [task_id for task_id in task_ids if task_id not in report]
    broker = get_broker()
    holders = {task_id: consumer for task_id, consumer in _holders(broker).items() if task_id in pending}
    if pending:
        control.revoke(pending, terminate=terminate)
    for task_id in pending:
        report[task_id] = RUNNING if task_id in holders else REVOKED
    if not terminate or not holders:
        return report
    threaded = set(WorkerRecord.objects.filter(
        key__in={consumer.rsplit(".", 1)[0] for consumer in holders.values()}, pool__in=("threads", "solo"))
        .values_list("key", flat=True))
    waiting_for = set()
    for task_id, consumer in holders.items():
        if consumer.rsplit(".", 1)[0] in threaded:
            report[task_id] = UNSTOPPABLE
        else:
            waiting_for.add(task_id)
    deadline = time.monotonic() + wait
    still = set(waiting_for)
    while still and time.monotonic() < deadline:
        time.sleep(0.1)
        still &= set(_holders(broker))
    for task_id in waiting_for:
        report[task_id] = NOT_STOPPED if task_id in still else TERMINATED
    return report


def _holders(broker) -> dict[str, str]:
    """Task id -> the consumer holding its message now (running it, or about to in its batch)."""
    return {key.split("~", 1)[0]: consumer for consumer, keys in broker.inspect(holders=True).held.items()
            for key in keys}


def pause(queue: str, by: str = "") -> None:
    """Consumers stop reserving from `queue` within a few seconds (controls.READ_EVERY)."""
    PausedQueue.objects.update_or_create(queue=queue, defaults={"paused_by": by[:150], "paused_at": timezone.now()})


def resume(queue: str) -> None:
    PausedQueue.objects.filter(queue=queue).delete()


@dataclass
class WorkerInfo:
    key: str  # "<hostname>.<instance>"
    hostname: str
    alive: bool
    last_heartbeat: float | None  # seconds ago (its freshest consumer)
    consumers: list[str] = field(default_factory=list)
    running: list[Message] = field(default_factory=list)
    record: WorkerRecord | None = None  # None for a worker started before records were kept
    processed: int = 0
    failed: int = 0

    @property
    def started_at(self) -> datetime | None:
        return self.record.started_at if self.record else None


def workers() -> list[WorkerInfo]:
    """Workers from their consumers' leases and their records: live ones first, then the dead of
    the last day (a record whose consumers stopped renewing their leases)."""
    holdings = get_broker().inspect(holders=True)
    timeout = get_settings().VISIBILITY_TIMEOUT
    WorkerRecord.objects.filter(started_at__lt=timezone.now() - WORKERS_KEPT).delete()
    found: dict[str, WorkerInfo] = {}
    for record in WorkerRecord.objects.all():
        found[record.key] = WorkerInfo(record.key, record.hostname, False, None, record=record)
    holding: list[tuple[WorkerInfo, str]] = []
    for consumer, age in holdings.consumers.items():
        if consumer.startswith("purge-") or age > timeout:
            continue
        key = consumer.rsplit(".", 1)[0]
        info = found.setdefault(key, WorkerInfo(key, control.hostname_of(consumer), True, age))
        info.alive = True
        info.last_heartbeat = age if info.last_heartbeat is None else min(info.last_heartbeat, age)
        info.consumers.append(consumer)
        holding += [(info, message_key) for message_key in holdings.held.get(consumer, [])]
    _add_running(holding)
    for info in found.values():
        if info.record is not None:
            counts = store.counts_by_worker(info.hostname, info.record.started_at)
            info.processed = sum(counts.values())
            info.failed = counts.get(states.FAILURE, 0)
    return sorted(found.values(), key=lambda w: (not w.alive, -(w.started_at.timestamp() if w.started_at else 0)))


def _add_running(holding: list[tuple[WorkerInfo, str]]) -> None:
    """The tasks the workers hold and have not finished (acks pending), in two reads."""
    broker = get_broker()
    bodies = broker.inspect([key for _, key in holding]).bodies if holding else {}
    decoded = []
    for info, key in holding:
        if key not in bodies and not broker.reads_by_key:  # RabbitMQ: what the results table knows
            decoded.append((info, control.message_from_row(key)))
            continue
        try:
            decoded.append((info, decode(bodies[key], get_settings().signing_key)))
        except Exception:  # acked meanwhile, or a body the worker will dead-letter
            continue
    known = store.known_states([message.id for _, message in decoded])
    for info, message in decoded:
        if known.get(message.id, (states.STARTED, 0))[0] not in states.READY_STATES:
            info.running.append(message)


def request_shutdown(key: str, by: str = "") -> bool:
    """Ask a worker for a warm shutdown: one of its consumers reads the request within a few
    seconds and signals its supervisor (on the worker's own host). False if it has no record."""
    return bool(WorkerRecord.objects.filter(key=key, shutdown_requested_at__isnull=True).update(
        shutdown_requested_at=timezone.now(), shutdown_requested_by=by[:150]))


@dataclass
class Requeued:
    requeued: list[str] = field(default_factory=list)  # task ids sent back to their queues
    refused: dict[str, str] = field(default_factory=dict)  # dead letter id -> why it still cannot run


def requeue_dead_letters(letters: list[DeadLetter]) -> Requeued:
    """Send dead letters back to their queues (after the cause is fixed: a task name registered,
    say), their results back to PENDING, and delete them. A letter that still cannot run here (it
    does not decode, or its task is still unknown) is refused with the reason and kept."""
    outcome = Requeued()
    outgoing, messages, sent = [], [], []
    for letter in letters:
        body = letter.body.encode("utf-8")
        try:
            message = decode(body, get_settings().signing_key)
            registry.get_task(message.task)
        except Exception as exc:
            outcome.refused[str(letter.pk)] = str(exc) or repr(exc)
            continue
        if _finished(message.id):
            outcome.refused[str(letter.pk)] = "its task already finished: requeueing it would run it twice"
            continue
        outgoing.append(Outgoing(letter.queue or message.queue, message.id, body, priority=message.priority))
        messages.append(message)
        sent.append(letter.pk)
    if outgoing:
        # In this order: a worker must not find the FAILURE of a requeued message (nor of the chain
        # steps and the chord that its dead-lettering failed), and a letter is deleted only once its
        # message is back in the broker (if publishing fails, it is kept; reopening again is harmless).
        task_ids = [message.id for message in messages]
        with transaction.atomic():
            store.unfail_dead_lettered(task_ids)
            for message in messages:
                store.reopen_followers(message.id, store.stored_options(message))
        get_broker().publish(outgoing)
        DeadLetter.objects.filter(pk__in=sent).delete()
        outcome.requeued = task_ids
    return outcome


def _finished(task_id: str) -> bool:
    """Finished for good: not the FAILURE that dead-lettering stored (unfail_dead_lettered undoes that)."""
    row = store.fetch(task_id)
    if row is None or row.state not in states.READY_STATES:
        return False
    return not (row.state == states.FAILURE and isinstance(row.result, dict)
                and row.result.get("exc_type") == "DeadLettered")


def status() -> dict:
    """Everything `manage.py taskqueue status` prints (as JSON with --json)."""
    return {
        "queues": {q.name: {"ready": q.ready, "delayed": q.delayed, "in_flight": q.in_flight,
                            "oldest_age_s": None if q.oldest_age is None else round(q.oldest_age, 3),
                            "paused": q.paused} for q in queues()},
        "results": store.counts_by_state(),
        "workers": [{"key": w.key, "hostname": w.hostname, "alive": w.alive,
                     "last_heartbeat_s_ago": None if w.last_heartbeat is None else round(w.last_heartbeat, 3),
                     "pid": w.record.pid if w.record else None, "queues": w.record.queues if w.record else [],
                     "concurrency": w.record.concurrency if w.record else len(w.consumers),
                     "pool": w.record.pool if w.record else "", "started_at": w.started_at.isoformat()
                     if w.started_at else None, "running": [{"id": m.id, "task": m.task} for m in w.running],
                     "processed": w.processed, "failed": w.failed,
                     "shutdown_requested": bool(w.record and w.record.shutdown_requested_at)} for w in workers()],
        "dead_letters": {"count": DeadLetter.objects.count(), "latest": [
            {"id": letter.pk, "message_id": letter.message_id, "task": letter.task_name, "queue": letter.queue,
             "reason": letter.reason[:200], "received": letter.date_received.isoformat()}
            for letter in DeadLetter.objects.order_by("-date_received")[:10]]},
    }
