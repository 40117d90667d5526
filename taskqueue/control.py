"""Operator actions behind `manage.py taskqueue`, the admin, AsyncResult.revoke and
`app.control`: status, revoke, purge, rate limits, inspect, cleanup, and what the workers hold.

Workers answer no broadcast here: what `app.control.inspect()` reports is read from what they
keep up to date anyway, the broker's lease records (each consumer's lease renewal and the
messages leased to it; a consumer id is "<hostname>.<instance>.<n>") and the task rows (STARTED,
with the worker's hostname, when tracking is on).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.utils import timezone

from . import ratelimits, registry, runtime, states, store
from .brokers import Broker, get_broker
from .brokers.base import Holdings
from .conf import get_settings
from .message import Message, decode

PURGE_BATCH = 500


def status() -> dict:
    """Ready messages per queue and stored results per state."""
    return {"queues": get_broker().inspect().sizes, "results": store.counts_by_state()}


def revoke(task_ids: list[str], terminate: bool = False, signal: str | None = None) -> None:
    """Record REVOKED (final), tell the broker never to hand these tasks out, and resolve their
    chords; with `terminate`, also stop them where they already run (prefork pool: the process
    running the task is killed and replaced, or sent `signal` if it is not SIGTERM/SIGKILL/SIGQUIT).
    As in Celery, `task_revoked` is sent by the worker: the one that meets the revoked message, or
    that stops the running task."""
    revoked = store.mark_revoked(task_ids)
    broker = get_broker()
    for task_id in task_ids:
        broker.cancel(task_id, _revoke_ttl(broker, task_id), terminate=(signal or "SIGTERM") if terminate else None)
    runtime.get().revoked(revoked)


def _revoke_ttl(broker: Broker, task_id: str) -> float:
    """How long the revoke must last: as long as results are kept, and at least until a message
    that waits for its eta (countdown) could still be delivered."""
    expires = get_settings().result_expires
    ttl = expires.total_seconds() if expires else 86400.0
    if not broker.reads_by_key:  # its eta cannot be read: past the longest delay the broker keeps
        return ttl + broker.longest_delay
    body = broker.inspect([task_id]).bodies.get(task_id)
    if body:
        try:
            eta = decode(body, get_settings().signing_key).eta_datetime
        except Exception:  # not ours to judge here: the worker dead-letters it
            eta = None
        if eta is not None:
            ttl += max(0.0, (eta - datetime.now(eta.tzinfo)).total_seconds())
    return ttl


def purge(queue: str) -> int:
    """Delete the ready messages of `queue` (and its delayed ones that are due); return how many.
    A purger takes them as a consumer would, and acks them."""
    broker = get_broker()
    purger = f"purge-{uuid.uuid4().hex}"
    purged = 0
    try:
        for _ in range(broker.inspect().sizes.get(queue, 0) // PURGE_BATCH + 1):
            deliveries = broker.reserve(purger, [queue], count=PURGE_BATCH, timeout=0)
            broker.ack(deliveries)
            purged += len(deliveries)
            if len(deliveries) < PURGE_BATCH:
                break
    finally:
        broker.leases(requeue=[purger])  # forget its lease (it holds nothing unless a step failed)
    return purged


def rate_limit(task_name: str, rate: str | float | None) -> None:
    """Set a task name's rate_limit on every worker ("10/m"; 0: no limit; None: the task's own)."""
    ratelimits.set_rate(task_name, rate)


def inspect(task_id: str) -> dict | None:
    row = store.fetch(task_id)
    if row is None:
        held = task_id in get_broker().inspect([task_id]).bodies
        return {"task_id": task_id, "state": "PENDING (queued)"} if held else None
    return {field: getattr(row, field) for field in (
        "task_id", "task_name", "state", "queue", "worker", "retries", "args", "kwargs", "result", "meta",
        "parent_id", "root_id", "group_id", "date_created", "date_started", "date_done")}


def cleanup(batch_size: int = 5000) -> int:
    """Delete expired finished results (and revoke markers that ran out) in batches."""
    from .models import CancelledTask  # waits for Django's app registry: `import taskqueue` comes first

    CancelledTask.objects.filter(expires_at__lt=timezone.now()).delete()
    expires = get_settings().result_expires
    return store.delete_expired(expires, batch_size) if expires is not None else 0


def hostname_of(consumer_id: str) -> str:
    return consumer_id.rsplit(".", 2)[0]


def workers() -> dict[str, list[str]]:
    """Live workers (a consumer heartbeat within the visibility timeout): hostname -> consumer ids."""
    return _live(get_broker().inspect(holders=True))


def _live(leases: Holdings) -> dict[str, list[str]]:
    live: dict[str, list[str]] = {}
    timeout = get_settings().VISIBILITY_TIMEOUT
    for consumer, age in leases.consumers.items():
        if age <= timeout:
            live.setdefault(hostname_of(consumer), []).append(consumer)
    return live


def held_tasks() -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """(active, reserved) per live worker hostname, in Celery's request shape.

    A leased task whose row is STARTED is active. One that is not: reserved when its start would
    have been recorded (TASKQUEUE_TRACK_STARTED or the task's track_started), else active, since
    nothing tells a running task from one about to run then. Finished ones (ack pending) are left out.
    """
    leases = get_broker().inspect(holders=True)
    timeout = get_settings().VISIBILITY_TIMEOUT
    held = [(hostname_of(consumer), key) for consumer, keys in leases.held.items()
            if leases.consumers.get(consumer, timeout + 1) <= timeout for key in keys]
    messages = [(host, message) for host, key in held if (message := _message(key)) is not None]
    known = store.known_states([message.id for _, message in messages])
    active: dict[str, list[dict]] = {host: [] for host in _live(leases)}
    reserved: dict[str, list[dict]] = {host: [] for host in active}
    for host, message in messages:
        state = known.get(message.id, (states.PENDING, 0))[0]
        if state in states.READY_STATES:
            continue
        entry = request_info(message, host)
        if state == states.STARTED:
            row = store.fetch(message.id)
            entry["time_start"] = row.date_started.timestamp() if row and row.date_started else None
            active.setdefault(host, []).append(entry)
        elif _tracked(message):
            reserved.setdefault(host, []).append(entry)
        else:
            active.setdefault(host, []).append(entry)
    return active, reserved


def delayed_tasks() -> list[dict]:
    """Messages waiting in the broker for their eta (countdown, eta, retry delay), soonest first."""
    entries = []
    for key, eta in get_broker().inspect(holders=True).delayed:
        message = _message(key)
        if message is not None:
            entries.append({"eta": datetime.fromtimestamp(eta, tz=timezone.get_current_timezone()).isoformat(),
                            "priority": message.priority, "request": request_info(message, None)})
    return entries


def request_info(message: Message, hostname: str | None) -> dict:
    """A message as Celery's inspect replies describe a request."""
    return {"id": message.id, "name": message.task, "type": message.task, "args": list(message.args),
            "kwargs": message.kwargs, "hostname": hostname, "time_start": None, "acknowledged": False,
            "worker_pid": None, "retries": message.retries, "eta": message.eta, "expires": message.expires,
            "parent_id": message.parent_id, "root_id": message.root_id,
            "delivery_info": {"exchange": "", "routing_key": message.queue, "priority": message.priority,
                              "redelivered": None}}


def _message(key: str) -> Message | None:
    broker = get_broker()
    body = broker.inspect([key]).bodies.get(key)
    if not body:
        return None if broker.reads_by_key else message_from_row(key)  # else: acked meanwhile
    try:
        return decode(body, get_settings().signing_key)
    except Exception:  # a message the worker will dead-letter: not a task to report
        return None


def message_from_row(key: str) -> Message:
    """What the results table knows of a message a broker cannot show (RabbitMQ): the call once the
    task started (or the django.tasks backend recorded it), else only its id."""
    task_id = key.split("~", 1)[0]
    row = store.fetch(task_id)
    if row is None:
        return Message(id=task_id, task="")
    return Message(id=task_id, task=row.task_name, args=tuple(row.args or ()), kwargs=row.kwargs or {},
                   queue=row.queue or "default", retries=row.retries, parent_id=row.parent_id, root_id=row.root_id,
                   group_id=row.group_id)


def _tracked(message: Message) -> bool:
    task = registry.find(message.task)
    track = getattr(task, "track_started", None)
    return not message.ignore_result and (track if track is not None else get_settings().TRACK_STARTED)


class Inspect:
    """`app.control.inspect()`: Celery's replies, keyed by worker hostname; None when no worker is live."""

    def __init__(self, destination: list[str] | str | None = None, **_: object):
        self.destination = [destination] if isinstance(destination, str) else destination

    def _only(self, replies: dict) -> dict | None:
        if self.destination is not None:
            replies = {host: reply for host, reply in replies.items() if host in self.destination}
        return replies or None

    def ping(self) -> dict | None:
        return self._only({host: {"ok": "pong"} for host in workers()})

    def active(self) -> dict | None:
        return self._only(held_tasks()[0])

    def reserved(self) -> dict | None:
        return self._only(held_tasks()[1])

    def scheduled(self) -> dict | None:
        """Delayed messages wait in the broker, not in a worker: they are listed under "broker"
        (when any worker is live, as Celery answers only through workers)."""
        if self._only(dict.fromkeys(workers(), True)) is None:
            return None
        return {"broker": delayed_tasks()}

    def registered(self) -> dict | None:
        """The tasks registered in this process: workers load the same INSTALLED_APPS."""
        names = sorted(registry.all_tasks())
        return self._only({host: list(names) for host in workers()})

    registered_tasks = registered

    def stats(self) -> dict | None:
        settings = get_settings()
        live = workers()
        started = store.worker_starts(list(live))
        now = timezone.now()
        return self._only({host: {
            "hostname": host,
            "pid": started[host][1] if host in started else None,
            "uptime": int((now - started[host][0]).total_seconds()) if host in started else None,
            "pool": {"max-concurrency": len(consumers), "processes": consumers},
            "prefetch_count": settings.PREFETCH * len(consumers),
            "broker": {"transport": settings.BROKER_URL.split(":", 1)[0]},
            "total": store.counts_by_task(host),
        } for host, consumers in live.items()})


class Control:
    """`app.control`: revoke, terminate, purge, ping and inspect over the broker and the result rows."""

    def __init__(self, app: object = None):
        self.app = app

    def revoke(self, task_id: str | list[str], destination: object = None, terminate: bool = False,
               signal: str | None = "SIGTERM", **_: object) -> None:
        revoke([task_id] if isinstance(task_id, str) else list(task_id), terminate=terminate, signal=signal)

    def terminate(self, task_id: str | list[str], destination: object = None, signal: str = "SIGTERM",
                  **_: object) -> None:
        self.revoke(task_id, terminate=True, signal=signal)

    def purge(self) -> int:
        """Delete the waiting messages of every queue the broker knows and the app routes to."""
        settings = get_settings()
        queues = {*get_broker().inspect().sizes, settings.DEFAULT_QUEUE}
        queues |= {t["queue"] if isinstance(t, dict) else str(t) for t in (settings.ROUTES or {}).values()}
        queues |= {queue for task in registry.all_tasks().values() if (queue := getattr(task, "queue", None))}
        return sum(purge(queue) for queue in sorted(queues))

    def rate_limit(self, task_name: str, rate_limit: str | float | None, destination: object = None,
                   **_: object) -> None:
        """Set a task's rate limit on every worker, at run time (Celery's `rate_limit` control)."""
        globals()["rate_limit"](task_name, rate_limit)  # the module's function: the argument hides it

    def ping(self, destination: list[str] | str | None = None, timeout: float = 1.0, **_: object) -> list[dict]:
        replies = Inspect(destination).ping() or {}
        return [{host: reply} for host, reply in replies.items()]

    def inspect(self, destination: list[str] | str | None = None, timeout: float = 1.0, **kwargs: object) -> Inspect:
        return Inspect(destination, **kwargs)
