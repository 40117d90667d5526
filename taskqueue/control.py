"""Operator actions behind `manage.py taskqueue`, the admin and AsyncResult.revoke: status,
revoke, purge, inspect, cleanup."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.utils import timezone

from . import ratelimits, runtime, store
from .brokers import Broker, get_broker
from .conf import get_settings
from .message import decode

PURGE_BATCH = 500


def status() -> dict:
    """Ready messages per queue and stored results per state."""
    return {"queues": get_broker().inspect().sizes, "results": store.counts_by_state()}


def revoke(task_ids: list[str], terminate: bool = False, signal: str | None = None) -> None:
    """Record REVOKED (final), tell the broker never to hand these tasks out, and resolve their
    chords; with `terminate`, also stop them where they already run (prefork pool: the process
    running the task is killed and replaced, or sent `signal` if it is not SIGTERM/SIGKILL/SIGQUIT)."""
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
