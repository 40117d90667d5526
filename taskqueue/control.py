"""Operator actions behind `manage.py taskqueue` and the admin: status, purge, inspect, cleanup."""

from __future__ import annotations

from django.db.models import Count
from django.utils import timezone

from .brokers import get_broker
from .conf import get_settings
from .models import CancelledTask, TaskResult


def status() -> dict:
    """Ready messages per queue and stored results per state."""
    by_state = dict(TaskResult.objects.order_by().values_list("state").annotate(n=Count("id")))
    return {"queues": get_broker().sizes(), "results": by_state}


def revoke(task_ids: list[str], terminate: bool = False, signal: str | None = None) -> None:
    """Record REVOKED (final), tell the broker never to hand these tasks out, and resolve their
    chords; with `terminate`, also stop them where they already run (prefork pool: the process
    running the task is killed and replaced, or sent `signal` if it is not SIGTERM/SIGKILL/SIGQUIT)."""
    from . import chords, store

    revoked = store.mark_revoked(task_ids)
    broker = get_broker()
    for task_id in task_ids:
        broker.cancel(task_id, _revoke_ttl(broker, task_id), terminate=(signal or "SIGTERM") if terminate else None)
    chords.record_revoked(revoked)


def _revoke_ttl(broker, task_id: str) -> float:
    """How long the revoke must last: as long as results are kept, and at least until a message
    that waits for its eta (countdown) could still be delivered."""
    from datetime import datetime

    from .message import decode

    expires = get_settings().result_expires
    ttl = expires.total_seconds() if expires else 86400.0
    body = broker.body(task_id)
    if body:
        try:
            eta = decode(body, get_settings().signing_key).eta_datetime
        except Exception:  # not ours to judge here: the worker dead-letters it
            eta = None
        if eta is not None:
            ttl += max(0.0, (eta - datetime.now(eta.tzinfo)).total_seconds())
    return ttl


def purge(queue: str) -> int:
    return get_broker().purge(queue)


def inspect(task_id: str) -> dict | None:
    row = TaskResult.objects.filter(task_id=task_id).first()
    if row is None:
        return {"task_id": task_id, "state": "PENDING (queued)"} if get_broker().contains(task_id) else None
    return {field: getattr(row, field) for field in (
        "task_id", "task_name", "state", "queue", "worker", "retries", "args", "kwargs", "result", "meta",
        "parent_id", "root_id", "group_id", "date_created", "date_started", "date_done")}


def cleanup(batch_size: int = 5000) -> int:
    """Delete expired finished results in batches of ids, never loading them all."""
    CancelledTask.objects.filter(expires_at__lt=timezone.now()).delete()  # revoke markers that ran out
    expires = get_settings().result_expires
    if expires is None:
        return 0
    deleted = 0
    while True:
        ids = list(TaskResult.objects.expired(expires).order_by().values_list("id", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += TaskResult.objects.filter(id__in=ids).delete()[0]
