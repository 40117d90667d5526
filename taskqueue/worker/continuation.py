"""What follows a finished task: the one owner of continuations.

After an outcome is stored: a retry's next attempt, the links and the next chain step of a success,
the errbacks of a failure, the FAILURE of the chain steps that will never run, and, for a chord
member, counting it (in the transaction that stores it) and settling the chord: sending its body
with the results in definition order, or failing the body (and all after it) and calling the
body's errbacks once. Follow-up ids are derived from the parent's, so sending again after a crash
is harmless. Also used in the caller's process: eager runs, and revoking a chord member.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from .. import registry, serialization, signals, states, store
from ..canvas import Signature, chain, chord, group, maybe_signature
from ..codecs import Outcome, value_of
from ..exceptions import ChordError
from ..message import Message
from ..producer import send, sending_in_the_transaction
from ..request import Request, request_context
from ..utils import derived_id

logger = logging.getLogger("taskqueue.worker")


def save(outcomes: list[Outcome]) -> store.Wake:
    """Plain outcomes in one write; chord members in one transaction per chord that counts them.
    A step that stops its chain is stored with the FAILURE of the steps that will never run, in one
    transaction. Returns what the caller must still pass to `notify.publish` to wake waiters."""
    failures = [outcome.message for outcome in outcomes if outcome.state == states.FAILURE]
    if failures:  # the failure path only: how they were sent, kept before anyone sees FAILURE (`resume`)
        store.save_failed_calls(failures)
    members: dict[str, list[Outcome]] = {}
    plain = []
    for outcome in outcomes:
        if outcome.message.chord and outcome.state in states.READY_STATES:
            members.setdefault(outcome.message.chord["group_id"], []).append(outcome)
        else:
            plain.append(outcome)
    stopped = [o for o in outcomes if o.message.chain and o.state in (states.FAILURE, states.REVOKED)]
    if stopped:  # a failed step and the later steps that will never run become visible together
        with transaction.atomic():
            wake = store.save_outcomes(plain, publish=False)
            for outcome in stopped:
                _store_never_run(list(task_nodes(rest_of_chain(outcome.message))), outcome.result,
                                 _never_run_traceback(outcome.result))
    else:
        wake = store.save_outcomes(plain, publish=False)
    for group_id, finished in members.items():
        failed = store.save_chord_members(group_id, finished)
        # A failed member calls its own errbacks; the chord's failure must not call them again.
        settle(group_id, skip_errbacks=(failed or finished[0]).message.link_error)
    return wake


def in_one_write(outcomes: list[Outcome]) -> bool:
    """Whether `save` stores these in one statement and nothing is sent after it: successes of
    tasks outside a chord (what follows a success is sent before the write)."""
    return all(outcome.state == states.SUCCESS and not outcome.message.chord for outcome in outcomes)


def follow_up(outcome: Outcome, hostname: str, eager: bool = False):
    """Send what comes next (the retry, links, the next chain step, errbacks); returns a retry's result."""
    message = outcome.message
    if outcome.state == states.RETRY:
        assert outcome.next_attempt is not None  # a RETRY outcome carries it
        args, kwargs, options = outcome.next_attempt
        return send(message.task, tuple(args), dict(kwargs), task=registry.find(message.task), **options)
    if outcome.state == states.SUCCESS and (message.link or message.chain):
        # the value as stored: the live object may have changed since the task returned
        _send_links(message, serialization.from_jsonable(outcome.encoded))
    elif outcome.state in (states.FAILURE, states.REVOKED):
        # the later steps' FAILURE rows: `save` stored them with this outcome
        _after_a_stop(message, outcome.state, outcome.result, outcome.traceback, hostname, eager, rows_stored=True)
    return None


def _after_a_stop(message: Message, state: str, exc: Any, traceback: str | None, hostname: str,
                  eager: bool = False, rows_stored: bool = False) -> None:
    """What follows a task that ended FAILURE or REVOKED: after a failure its errbacks; then the
    FAILURE of its chain's later steps, which will never run (and of an enclosing chord)."""
    if state == states.FAILURE:
        call_errbacks(message.link_error, Request.from_message(message, hostname, eager), exc, traceback)
    if message.chain:
        fail_canvas(rest_of_chain(message), exc, call_errbacks_of_entry=False, rows_stored=rows_stored)


def resume(message: Message, hostname: str = "") -> None:
    """A redelivered message that already finished, or one of a revoked task: redo what may not
    have happened after it (sending the next step; after a failure, its errbacks; after a failure
    or a revoke, the failure of the chain's later steps; settling its chord). Sends are idempotent
    (same ids, deduplicated), a chord failed twice fails once, and an errback that runs in place
    may run twice, as any task may."""
    row = store.fetch(message.id)
    if row is None:
        return
    if store.revoked_by_call(row):
        _announce_revoked(message, hostname)
    if message.chord and row.state == states.REVOKED:
        # counted when revoked only if its row named its group then (a chain's step sent later did not)
        _fail_member(message.chord["group_id"], message.id)
    elif message.chord and row.state in states.READY_STATES:
        settle(message.chord["group_id"])
    if row.state == states.SUCCESS and (message.link or message.chain):
        _send_links(message, serialization.from_jsonable(row.result))
    elif row.state in (states.FAILURE, states.REVOKED) and (message.link_error or message.chain):
        # as `follow_up` does after a stop: the worker may have died before it did, or a revoked
        # task's message was never run (a chord failed twice fails once)
        _after_a_stop(message, row.state, value_of(row), row.traceback, hostname)


def _announce_revoked(message: Message, hostname: str) -> None:
    """task_revoked for the message of a revoked task, which this worker acks unrun (as Celery's
    worker sends it when it discards a revoked request; a stopped or expired task's is sent where
    that happens). Sent again if the message is: a worker that dies before the ack."""
    if not signals.task_revoked.receivers:
        return
    try:
        signals.task_revoked.send(sender=registry.find(message.task) or message.task,
                                  request=Request.from_message(message, hostname),
                                  terminated=False, signum=None, expired=False)
    except Exception:
        logger.exception("A task_revoked receiver raised for %s[%s]", message.task, message.id)


def revoked(task_ids: list[str]) -> None:
    """Tasks revoked (or failed) outside a worker: count them for their chords, which then fail."""
    for task_id, group_id in store.chords_of(task_ids):
        _fail_member(group_id, task_id)


def dead_lettered(task_id: str, message: Message | None, exc: BaseException) -> None:
    """A task whose message became a dead letter (its row stored FAILURE): its chord fails, and so
    do its chain's later steps, which will never run (no errbacks: it never ran either, as for a
    revoked step). A requeue of the letter reopens them (`store.reopen_followers`)."""
    revoked([task_id])
    if message is not None and message.chain:
        fail_canvas(rest_of_chain(message), exc, call_errbacks_of_entry=False)


def rest_of_chain(message: Message) -> chain:
    return chain(*[maybe_signature(step) for step in reversed(message.chain)])


def _send_links(message: Message, retval: Any) -> None:
    lineage = {"parent_id": message.id, "root_id": message.root_id or message.id}
    for index, callback in enumerate(message.link):
        sig = maybe_signature(callback)
        sig.apply_async((retval,), task_id=sig.id or derived_id(message.id, f"link{index}"), **lineage)
    if message.chain:
        step, later = maybe_signature(message.chain[-1]), message.chain[:-1]
        rest = {"chain": later} if later else {}  # only tasks precede the end
        step.apply_async((retval,), task_id=step.id or derived_id(message.id, "chain"), **rest, **lineage)


# -- chords --------------------------------------------------------------------------------------

def settle(group_id: str, skip_errbacks: list | None = None) -> None:
    """Send the body of a resolved chord, or fail it; safe to call again (after a crash, say)."""
    counter = store.chord_counter(group_id)
    if counter is None or counter.state == counter.PENDING or counter.body_sent:
        return
    body = maybe_signature(counter.body)
    if counter.state == counter.SUCCESS:
        # Claimed and sent in one transaction: of two settles that both read the chord done, one
        # sends the body (RabbitMQ keeps no key to drop a second copy by); a send that fails, or a
        # crash before the commit, leaves the claim to the next settle (a redelivered member's).
        with transaction.atomic(), sending_in_the_transaction():
            if counter.claim():
                body.apply_async((store.results_in_order(counter.member_ids),))
    elif counter.claim():  # errbacks run once: only the settle that claims the chord fails it
        row = store.fetch(counter.failed_task_id)
        fail_canvas(body, _chord_error(row, counter.failed_task_id), skip_errbacks=skip_errbacks or [],
                    traceback=row.traceback if row is not None else None)


def _fail_member(group_id: str, task_id: str) -> None:
    """A chord member that will never succeed: counted as failed, and the chord settled (failed)."""
    store.count_failed_member(group_id, task_id)
    settle(group_id)


def _chord_error(row: Any, task_id: str) -> ChordError:
    """Celery's error for the body of a chord whose member failed (the member's error its cause)."""
    cause = value_of(row)
    if not isinstance(cause, BaseException):
        cause = ChordError(f"{row.state if row is not None else 'missing'} result")
    error = ChordError(f"Dependency {task_id} raised {cause!r}")
    error.__cause__ = cause
    return error


# -- what will never run -------------------------------------------------------------------------

def _store_never_run(nodes: list[Signature], exc: BaseException, traceback: str) -> None:
    """Store FAILURE for these tasks (`task_nodes` of a canvas): they will never run."""
    nodes = [node for node in nodes if node.id]
    store.save_failures([node.id for node in nodes], exc, traceback, {node.id: node.name for node in nodes})


def _never_run_traceback(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n" + "".join(f"{note}\n" for note in getattr(exc, "__notes__", []))


def fail_canvas(sig: Signature, exc: BaseException, skip_errbacks: list | None = None,
                call_errbacks_of_entry: bool = True, rows_stored: bool = False, traceback: str | None = None) -> None:
    """Mark every task of `sig` FAILURE (it will never run; `rows_stored`: already done), call its
    entry errbacks once (unless already called, in `skip_errbacks`), and resolve any enclosing
    chord whose member this was. `traceback`: the one to show (a failed chord member's)."""
    nodes = list(task_nodes(sig))
    traceback = traceback or _never_run_traceback(exc)
    if not rows_stored:
        _store_never_run(nodes, exc, traceback)
    entries = list(entry_nodes(sig))
    errbacks = []
    for node in entries if call_errbacks_of_entry else ():
        for errback in node.options.get("link_error", []):
            if errback not in errbacks and errback not in (skip_errbacks or []):
                errbacks.append(errback)
    first = entries[0] if entries else None
    if errbacks and first is not None:
        request = Request(id=first.id, task=first.name, args=first.args, kwargs=first.kwargs,
                          root_id=first.options.get("root_id"), parent_id=first.options.get("parent_id"),
                          group_id=first.options.get("group_id"))
        call_errbacks(errbacks, request, exc, traceback)
    for node in nodes:
        outer = node.options.get("chord")
        if outer and node.id:
            _fail_member(outer["group_id"], node.id)


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


# -- errbacks ------------------------------------------------------------------------------------

def call_errbacks(errbacks: list, request: Request, exc: BaseException, traceback: str | None) -> None:
    """Call each errback once: a handler taking (request, exc, traceback) runs in place, others are
    sent with the failed task's id. One that raises is logged and does not stop the others."""
    for index, errback in enumerate(errbacks):
        sig = Signature(errback)
        try:
            handler = registry.find(sig.name)
            if handler is not None and not sig.immutable and _takes_request_exc_traceback(handler, len(sig.args)):
                with request_context(Request(task=handler.name)):
                    handler(*sig.args, request, exc, traceback)
            else:
                assert request.id is not None  # the failed task's request
                sig.apply_async(() if sig.immutable else (request.id,),
                                task_id=sig.id or derived_id(request.id, f"errback{index}"),
                                parent_id=request.id, root_id=request.root_id or request.id)
        except Exception:
            logger.exception("Errback %s for %s[%s] raised; the failure is stored anyway",
                             sig.name, request.task, request.id)


def _takes_request_exc_traceback(task, partial_args: int) -> bool:
    """Whether the handler's positional parameters left after its partial args are exactly three."""
    params = list(task._signature().parameters.values())[(1 if task.bind else 0) + partial_args:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return len(positional) <= 3
    return len(positional) == 3
