"""Chord state: a ChordCounter row per chord, so exactly one finishing member sends the body.

Each member's result is stored in the same transaction that counts it, under a lock on the
counter row; a member already finished (a redelivery) is not counted twice. The first member
that fails, or the last one to finish, resolves the chord; `settle` then sends the body with
the results in definition order, or fails the body (and everything after it) with the
member's exception and calls the body's errbacks once.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import notify, serialization, states, store
from .callbacks import call_errbacks
from .canvas import Signature, chain, chord, group, maybe_signature
from .models import ChordCounter, TaskResult
from .request import Request

logger = logging.getLogger("taskqueue.chords")
_IN_BATCH = 500  # ids per IN (...) query, under SQLite's parameter limit


def create(group_id: str, member_results: list, body: Signature) -> None:
    """Record the chord before any header member is sent."""
    member_ids = [result.id for result in member_results]
    with transaction.atomic():
        ChordCounter.objects.create(group_id=group_id, total=len(member_ids), remaining=len(member_ids),
                                    member_ids=member_ids, body=dict(body))
        store.save_group(group_id, [result.as_tuple() for result in member_results])
        store.save_pending([(result.id, result.task_name or "") for result in member_results], group_id)


def record_members(group_id: str, outcomes: list[store.Outcome]) -> None:
    """Store finished members of one chord and count them, in one transaction; then settle it."""
    ids = [outcome.message.id for outcome in outcomes]
    with transaction.atomic():
        _lock(group_id)
        before = dict(TaskResult.objects.filter(task_id__in=ids).values_list("task_id", "state"))
        store.store_outcomes(outcomes)
        newly = [o for o in outcomes if before.get(o.message.id) not in states.READY_STATES]
        failed = next((o for o in newly if o.state != states.SUCCESS), None)
        if newly:
            _count(group_id, failed.message.id if failed else None, len(newly))
    notify.publish(ids)
    # A failed member calls its own errbacks; the chord's failure must not call them again.
    settle(group_id, skip_errbacks=(failed or outcomes[0]).message.link_error)


def record_revoked(task_ids: list[str]) -> None:
    """Members revoked (or failed) outside a worker: count them for their chords."""
    rows = TaskResult.objects.filter(task_id__in=task_ids).exclude(group_id=None).values_list("task_id", "group_id")
    for task_id, group_id in rows:
        with transaction.atomic():
            if _lock(group_id):
                _count(group_id, task_id, 1)
        settle(group_id)


def _lock(group_id: str) -> bool:
    # A no-op UPDATE takes the row lock on PostgreSQL and the write lock on SQLite, so concurrent
    # members of one chord count one at a time.
    return bool(ChordCounter.objects.filter(group_id=group_id).update(remaining=F("remaining")))


def _count(group_id: str, failed_task_id: str | None, finished: int) -> None:
    """Count `finished` members; a failed one (its id given) resolves the chord as failed."""
    counter = ChordCounter.objects.filter(group_id=group_id).first()
    if counter is None:
        return
    counter.remaining = max(0, counter.remaining - finished)
    if counter.state == ChordCounter.PENDING and (failed_task_id or counter.remaining == 0):
        counter.state = ChordCounter.FAILURE if failed_task_id else ChordCounter.SUCCESS
        counter.failed_task_id = failed_task_id
        counter.date_done = timezone.now()
    counter.save(update_fields=["remaining", "state", "failed_task_id", "date_done"])


def settle(group_id: str, skip_errbacks: list | None = None) -> None:
    """Send the body of a resolved chord, or fail it; safe to call again (after a crash, say)."""
    counter = ChordCounter.objects.filter(group_id=group_id).first()
    if counter is None or counter.state == ChordCounter.PENDING or counter.body_sent:
        return
    body = maybe_signature(counter.body)
    if counter.state == ChordCounter.SUCCESS:
        body.apply_async((_results_in_order(counter.member_ids),))
        _claim(counter)
    elif _claim(counter):  # errbacks run once: only the settle that claims the chord fails it
        failed = store.fetch(counter.failed_task_id)
        exc = _member_exception(failed, counter.failed_task_id)
        fail_canvas(body, exc, skip_errbacks=skip_errbacks or [])


def _claim(counter: ChordCounter) -> bool:
    return bool(ChordCounter.objects.filter(pk=counter.pk, body_sent=False).update(body_sent=True))


def _results_in_order(member_ids: list[str]) -> list:
    values = {}
    for start in range(0, len(member_ids), _IN_BATCH):
        chunk = member_ids[start:start + _IN_BATCH]
        values.update(TaskResult.objects.filter(task_id__in=chunk).values_list("task_id", "result"))
    return [serialization.from_jsonable(values.get(task_id)) for task_id in member_ids]


def _member_exception(row: TaskResult | None, task_id: str) -> BaseException:
    from .result import _value_of

    exc = _value_of(row) if row is not None else None
    if not isinstance(exc, BaseException):
        from .exceptions import ChordError

        exc = ChordError(f"chord member {task_id} did not succeed")
    exc.add_note(f"chord member {task_id} failed, so the chord's body did not run")
    return exc


def store_never_run(sig: Signature, exc: BaseException) -> None:
    """Store FAILURE for every task of `sig`: it will never run."""
    nodes = [node for node in task_nodes(sig) if node.id]
    store.save_failures([node.id for node in nodes], exc, _never_run_traceback(exc),
                        {node.id: node.name for node in nodes})


def _never_run_traceback(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n" + "".join(f"{note}\n" for note in getattr(exc, "__notes__", []))


def fail_canvas(sig: Signature, exc: BaseException, skip_errbacks: list | None = None,
                call_errbacks_of_entry: bool = True, rows_stored: bool = False) -> None:
    """Mark every task of `sig` FAILURE (it will never run; `rows_stored`: already done), call its
    entry errbacks once (unless already called, in `skip_errbacks`), and resolve any enclosing
    chord whose member this was."""
    nodes = list(task_nodes(sig))
    traceback = _never_run_traceback(exc)
    if not rows_stored:
        store_never_run(sig, exc)
    errbacks = []
    for node in entry_nodes(sig) if call_errbacks_of_entry else ():
        for errback in node.options.get("link_error", []):
            if errback not in errbacks and errback not in (skip_errbacks or []):
                errbacks.append(errback)
    first = next(iter(entry_nodes(sig)), None)
    if errbacks and first is not None:
        request = Request(id=first.id, task=first.name, args=first.args, kwargs=first.kwargs,
                          root_id=first.options.get("root_id"), parent_id=first.options.get("parent_id"),
                          group_id=first.options.get("group_id"))
        call_errbacks(errbacks, request, exc, traceback)
    for node in nodes:
        outer = node.options.get("chord")
        if outer and node.id:
            with transaction.atomic():
                if _lock(outer["group_id"]):
                    _count(outer["group_id"], node.id, 1)
            settle(outer["group_id"])


def task_nodes(sig: Signature):
    """Every task of a canvas, depth first."""
    sig = maybe_signature(sig)
    if isinstance(sig, (chain, group)):
        for step in sig.tasks:
            yield from task_nodes(step)
    elif isinstance(sig, chord):
        yield from task_nodes(sig.header)
        yield from task_nodes(sig.body)
    else:
        yield sig


def entry_nodes(sig: Signature):
    """The tasks that would have run first: the ones a failure "happens to"."""
    sig = maybe_signature(sig)
    if isinstance(sig, chain):
        steps = sig.tasks
        if steps:
            yield from entry_nodes(steps[0])
    elif isinstance(sig, group):
        for member in sig.tasks:
            yield from entry_nodes(member)
    elif isinstance(sig, chord):
        yield from entry_nodes(sig.body)
    else:
        yield sig
