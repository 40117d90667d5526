"""Django signals with Celery's names and arguments, for observing tasks and workers.

Sent (receivers get Celery's keyword arguments; `sender` as in Celery):
- `before_task_publish` / `after_task_publish` (sender: task name; `body`, `exchange`,
  `routing_key`, `headers`, `properties`, `declare`, `retry_policy`): in the caller, around the
  publish (after the commit when sent inside `transaction.atomic()`).
- `task_prerun` (`task_id`, `task`, `args`, `kwargs`), `task_postrun` (+ `retval`, `state`),
  `task_success` (`result`), `task_failure` (`task_id`, `exception`, `args`, `kwargs`,
  `traceback`, `einfo`), `task_retry` (`request`, `reason`, `einfo`): in the process running
  the task (sender: the task), after its outcome is stored.
- `task_revoked` (`request`, `terminated`, `signum`, `expired`): by the worker, as in Celery: for
  a task that expired or that `revoke(terminate=True)` stopped, and for a revoked task's message
  it meets (waiting when revoked, or a chain step revoked before it was sent), which it acks unrun.
- `worker_init` (before the consumers start), `worker_ready` (once they run) and
  `worker_shutdown` (after the warm shutdown) in the `runworker` process; with the lean
  supervisor (prefork on Redis) `worker_shutdown` is sent by each consumer process as it stops.
  `worker_process_init` in each consumer process as it starts.
Defined so Celery code imports, never sent: the others of Celery's list below.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.dispatch import Signal as DjangoSignal

if TYPE_CHECKING:
    from .message import Message


class Signal(DjangoSignal):
    """A Django signal that also connects as Celery's do: `@task_failure.connect` and
    `@task_failure.connect(sender=...)` as decorators (Django's `connect` returns None), and a
    sender given as a string (a task name) matches by value, not by identity."""

    def connect(self, receiver: Callable | None = None, sender: Any = None, weak: bool = True,
                dispatch_uid: Any = None, **_: Any) -> Any:
        if receiver is None:
            def decorate(function: Callable) -> Callable:
                self.connect(function, sender=sender, weak=weak, dispatch_uid=dispatch_uid)
                return function
            return decorate
        super().connect(receiver, _by_value(sender), weak, dispatch_uid)
        return receiver

    def disconnect(self, receiver: Callable | None = None, sender: Any = None, dispatch_uid: Any = None) -> bool:
        return super().disconnect(receiver, _by_value(sender), dispatch_uid)

    def send(self, sender: Any, **named: Any) -> list:
        return super().send(_by_value(sender), **named)


def _by_value(sender: Any) -> Any:
    # Django matches senders by id(): one interned object per task name makes names match by value
    return sys.intern(sender) if type(sender) is str else sender


before_task_publish = Signal()
after_task_publish = Signal()
task_prerun = Signal()
task_postrun = Signal()
task_success = Signal()
task_failure = Signal()
task_retry = Signal()
task_revoked = Signal()
worker_init = Signal()
worker_process_init = Signal()
worker_ready = Signal()
worker_shutdown = Signal()

# Celery's other signals: accepted for connecting, not sent.
task_received = Signal()
task_rejected = Signal()
task_unknown = Signal()
task_internal_error = Signal()
celeryd_init = Signal()
celeryd_after_setup = Signal()
import_modules = Signal()
worker_before_create_process = Signal()
worker_process_shutdown = Signal()
worker_shutting_down = Signal()
heartbeat_sent = Signal()
setup_logging = Signal()
after_setup_logger = Signal()
after_setup_task_logger = Signal()
beat_init = Signal()
beat_embedded_init = Signal()


def publish_arguments(msg: Message, after: bool = False) -> dict[str, Any]:
    """Celery's publish signal arguments (message protocol 2) for one message."""
    body = (list(msg.args), dict(msg.kwargs), {"callbacks": msg.link or None, "errbacks": msg.link_error or None,
                                               "chain": list(msg.chain) or None, "chord": msg.chord})
    if after:
        return {"body": body, "exchange": "", "routing_key": msg.queue}
    headers = {"lang": "py", "task": msg.task, "id": msg.id, "eta": msg.eta, "expires": msg.expires,
               "group": msg.group_id, "group_index": msg.group_index, "retries": msg.retries,
               "timelimit": [msg.time_limit, msg.soft_time_limit], "root_id": msg.root_id,
               "parent_id": msg.parent_id, "ignore_result": msg.ignore_result, **(msg.headers or {})}
    properties = {"correlation_id": msg.id, "priority": msg.priority, "content_type": "application/json",
                  "content_encoding": "utf-8"}
    return {"body": body, "exchange": "", "routing_key": msg.queue, "headers": headers, "properties": properties,
            "declare": [], "retry_policy": None}
