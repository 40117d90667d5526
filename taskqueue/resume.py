"""Resuming a failed task: send it again (same call, a new attempt) with everything that was to
follow it (the rest of its chain, its chord, its links), so the workflow carries on from there.

The call comes from the `FailedCall` row the worker keeps for every failure. The tasks that never
ran behind the failure, and a chord the failure resolved, are made to wait again first, in the
transaction that sends the task: a chord counts the new attempt once and sends its body once.
"""

from __future__ import annotations

import uuid

from django.db import transaction

from . import registry, serialization, states, store
from .producer import RESUMED_HEADER, send


class NotResumable(Exception):
    """The task cannot be resumed; the message says why and what to do instead."""


def resume(task_id: str) -> str:
    """Send the failed task `task_id` again with what followed it; returns a sentence saying
    what was sent. Raises NotResumable (not FAILURE, never ran, already resumed)."""
    row = store.fetch(task_id)
    if row is None or row.state != states.FAILURE:
        raise NotResumable(f"{task_id} is {'unknown' if row is None else row.state}, not FAILURE")
    call = store.failed_call(task_id)
    kept = call is not None
    if call is None:
        if row.args is None and row.kwargs is None:
            raise NotResumable(f"{task_id} never ran: resume the task whose failure stopped it")
        call = {"task": row.task_name, "args": serialization.from_jsonable(row.args or []),
                "kwargs": serialization.from_jsonable(row.kwargs or {}),
                "options": {"queue": row.queue, "parent_id": row.parent_id, "root_id": row.root_id,
                            "group_id": row.group_id}}
    options = {key: value for key, value in call["options"].items() if key not in ("eta", "expires", "retries")}
    # a key of its own: the failed attempt's message may still be held (acked after its failure is stored)
    options["headers"] = {**(options.get("headers") or {}), RESUMED_HEADER: uuid.uuid4().hex[:12]}
    with transaction.atomic():  # the reopened rows and the message: both, or neither (outbox)
        if not store.reopen_failed(task_id):
            raise NotResumable(f"{task_id} was resumed already")
        store.reopen_followers(task_id, options)
        send(call["task"], tuple(call["args"]), dict(call["kwargs"]), task=registry.find(call["task"]),
             **{**options, "task_id": task_id})
    if not kept:
        return f"Sent {row.task_name}[{task_id}] again (its call was not kept: what followed it is not resent)"
    return f"Sent {row.task_name}[{task_id}] again; what followed it runs when it succeeds"
