"""One batch of deliveries, top to bottom: decode → check → run → store → follow up → ack.

The only caller of `ack` and `release`. A message is acked only after its outcome is stored;
follow-up messages (links, next chain step) get ids derived from the parent's id, so sending
them again after a crash is harmless.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import chords, locks, notify, registry, serialization, signals, states, store
from ..brokers import Broker, Delivery
from ..callbacks import call_errbacks
from ..canvas import chain, maybe_signature
from ..conf import get_settings
from ..exceptions import DecodeError, NotRegistered, Retry, TaskRevokedError, WorkerLostError, printable, raisable
from ..message import Message, decode, peek_id
from ..models import DeadLetter
from ..outages import drop_broken_connections, is_outage, lost_database, through_outages
from ..request import Request, request_context
from ..store import Outcome
from ..utils import derived_id
from .timelimits import soft_time_limit

logger = logging.getLogger("taskqueue.worker")


@dataclass
class ExecutionContext:
    """Who is executing: the broker to ack on and the consumer holding the leases."""

    broker: Broker | None
    hostname: str
    consumer_id: str
    on_task_start: Callable[[Delivery | None, Message], None] = lambda delivery, message: None
    on_task_end: Callable[[], None] = lambda: None
    eager: bool = False
    watchdog: Watchdog | None = None  # one per consumer, made on its first batch
    should_stop: Callable[[], bool] = lambda: False  # a warm shutdown: stop holding through outages


class ExceptionInfo:
    """What on_failure/on_retry receive as `einfo`."""

    def __init__(self, exc: BaseException, traceback: str):
        self.exception, self.type, self.traceback = exc, type(exc), traceback

    def __str__(self) -> str:
        return self.traceback


# Tasks of a batch run back to back and their outcomes are stored in one write. A short task never
# waits behind a long one of the same batch:
# - a task expected to run longer than LONG_TASK seconds (or not timed yet in this process) runs
#   alone: what finished before it is stored and acked first, and the rest of the batch goes back
#   to the queue for other consumers;
# - a task that turns out long (still running after WATCHDOG_AFTER) has the unstarted rest handed
#   back, and what finished before it stored and acked, by the watchdog thread while it runs.
# Outcomes are also stored at least every FLUSH_AFTER seconds.
LONG_TASK = 0.01
WATCHDOG_AFTER = 0.1  # looser than LONG_TASK: a short task with a database write can take 10 ms
FLUSH_AFTER = 0.02
_durations: dict[str, float] = {}  # task name -> smoothed run time in this process


class _Unstarted:
    """The deliveries of a batch not started yet; taken one by one, or all handed back at once."""

    def __init__(self, jobs: list[tuple[Delivery, Message]], ctx: ExecutionContext):
        self._jobs = collections.deque(jobs)
        self._lock = threading.Lock()
        self.ctx = ctx

    def __len__(self) -> int:
        return len(self._jobs)

    def take(self) -> tuple[Delivery, Message] | None:
        with self._lock:
            return self._jobs.popleft() if self._jobs else None

    def hand_back(self, taken: tuple[Delivery, Message] | None = None) -> bool:
        """Release every unstarted delivery (and `taken`, first) at the head of its queue; True if any."""
        with self._lock:
            jobs = ([taken] if taken else []) + list(self._jobs)
            self._jobs.clear()
            self.ctx.broker.release_many([delivery for delivery, _ in jobs])
        return bool(jobs)


class Watchdog:
    """A thread that, once the current task of a batch runs long, hands back the unstarted rest
    and stores (and acks) what finished before it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: tuple[_Unstarted, _Pending, float] | None = None
        self.handed_back = False
        self._thread: threading.Thread | None = None
        self._pid = 0

    def arm(self, unstarted: _Unstarted, pending: _Pending) -> None:
        if self._thread is None or self._pid != os.getpid():  # started lazily, in the process that runs tasks
            self._thread = threading.Thread(target=self._watch, name="taskqueue-watchdog", daemon=True)
            self._pid = os.getpid()
            self._thread.start()
        with self._cond:
            self._armed = (unstarted, pending, time.monotonic() + WATCHDOG_AFTER)
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._armed = None

    def _watch(self) -> None:
        while True:  # a daemon thread for the life of the consumer; each wait is bounded
            with self._cond:
                if self._armed is None:
                    self._cond.wait(1.0)
                    continue
                unstarted, pending, deadline = self._armed
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._armed = None
            try:
                if unstarted.hand_back():
                    self.handed_back = True
                pending.flush(run_hooks=False, hold=False)  # hooks and waiting stay with the consumer's thread
            except Exception:  # e.g. the broker is down: the consumer's own flush or the leases recover
                logger.exception("Could not hand back or store the rest of a batch")
            finally:
                from django.db import connections

                connections.close_all()  # this thread's own connections (database broker)


class _Pending:
    """Outcomes and deliveries of a batch that are finished but not yet stored and acked."""

    def __init__(self, ctx: ExecutionContext):
        self.ctx = ctx
        self.to_ack: list[Delivery] = []
        self.finished: list[tuple[Delivery, Outcome]] = []
        self.since: float | None = None
        self.hooks_due: list[Outcome] = []  # stored by the watchdog, hooks not run yet
        self._lock = threading.Lock()  # the watchdog may flush while the consumer runs a task

    def __bool__(self) -> bool:
        return self.since is not None

    def add(self, delivery: Delivery, outcome: Outcome | None = None) -> None:
        with self._lock:
            if self.since is None:
                self.since = time.monotonic()
            if outcome is None:
                self.to_ack.append(delivery)
            else:
                self.finished.append((delivery, outcome))

    def overdue(self) -> bool:
        return self.since is not None and time.monotonic() - self.since >= FLUSH_AFTER

    def flush(self, run_hooks: bool = True, hold: bool = True) -> None:
        """Store the outcomes, send their follow-ups, wake their waiters, ack, then run the hooks:
        a message is acked only once its outcome is stored and what follows it is sent.

        Through a database or broker outage the outcomes are held (with `hold`, this waits for the
        servers to come back) rather than dropped: a task that ran is not run again for it. Each
        step is done once, so a retry never re-sends a follow-up that was sent."""
        with self._lock:
            finished, to_ack = self.finished, self.to_ack
            self.finished, self.to_ack, self.since = [], [], None
            outcomes = [outcome for _, outcome in finished]
            if finished or to_ack:
                steps = _FlushSteps(finished, to_ack, self.ctx)
                try:
                    if hold:
                        through_outages(steps.run, "Storing outcomes", self.ctx.should_stop)
                    else:
                        steps.run()
                except BaseException:  # keep them: the next flush, or the consumer's give-back, has them
                    self.finished[:0], self.to_ack[:0] = steps.finished, steps.to_ack
                    self.since = self.since or time.monotonic()
                    raise
            self.hooks_due += outcomes
            if not run_hooks:
                return
            due, self.hooks_due = self.hooks_due, []
        for outcome in due:
            _run_hooks(registry.get_task(outcome.message.task), outcome)


class _FlushSteps:
    """The steps of one flush, each done once even when `run` is called again after an outage."""

    def __init__(self, finished: list[tuple[Delivery, Outcome]], to_ack: list[Delivery], ctx: ExecutionContext):
        self.finished, self.to_ack, self.ctx = finished, to_ack, ctx
        self.wake: tuple | None = None
        self.followed = 0

    def run(self) -> None:
        if self.wake is None:
            self.wake = self._save()
        while self.followed < len(self.finished):  # before waking anyone: a chain's next step is on the critical path
            delivery, outcome = self.finished[self.followed]
            if outcome is not None:
                _follow_up_or_dead_letter(delivery, outcome, self.ctx)
            self.followed += 1
        notify.publish(*self.wake)
        self.ctx.broker.ack(self.to_ack + [delivery for delivery, _ in self.finished])

    def _save(self) -> tuple:
        try:
            return save([outcome for _, outcome in self.finished])
        except Exception as exc:
            if is_outage(exc):
                raise
            logger.exception("Storing a batch of outcomes failed; storing them one by one")
        ids: list[str] = []
        notices: dict[str, bytes] = {}
        done: set[str] = set()
        for index, (delivery, outcome) in enumerate(self.finished):
            stored, wake = self._save_one(delivery, outcome)
            self.finished[index] = (delivery, stored)
            ids += wake[0]
            notices.update(wake[1])
            done |= wake[2]
        return ids, notices, done

    def _save_one(self, delivery: Delivery, outcome: Outcome) -> tuple[Outcome | None, tuple]:
        """The outcome stored, or the failure to store it stored in its place, or None once
        dead-lettered; with what wakes its waiters."""
        try:
            return outcome, save([outcome])
        except Exception as exc:
            if is_outage(exc):
                raise
            error = RuntimeError(f"the task ended {outcome.state} but its outcome could not be stored: {exc!r}")
        substitute = Outcome(outcome.message, states.FAILURE, error, traceback=outcome.traceback,
                             hostname=outcome.hostname, started=outcome.started)
        try:
            return substitute, save([substitute])
        except Exception as exc:
            if is_outage(exc):
                raise
            _dead_letter(delivery, f"{error}; storing that failed too: {exc!r}", self.ctx,
                         task_name=outcome.message.task)
            return None, ([], {}, set())


def process(deliveries: list[Delivery], ctx: ExecutionContext,
            should_stop: Callable[[], bool] = lambda: False) -> bool:
    """Run a batch; returns False when it was cut short (a long task, or a warm shutdown).

    Whatever goes wrong with one message stays with it (a dead letter, or the task failed); only
    an outage leaves this function, after storing what finished and giving back what did not."""
    ctx.should_stop = should_stop
    pending = _Pending(ctx)
    jobs: list[tuple[Delivery, Message]] = []
    for delivery in deliveries:
        message = _decode_or_dead_letter(delivery, ctx)
        if message is None:
            pending.add(delivery)
        else:
            jobs.append((delivery, message))
    # Only a redelivery or a retry can meet a stored outcome (revoked messages never get here).
    seen_before = [m.id for d, m in jobs if d.redeliveries or m.retries]
    try:
        known = store.known_states(seen_before) if seen_before else {}
    except Exception:
        pending.flush()  # dead letters found above are acked; the rest goes back
        ctx.broker.release_many([delivery for delivery, _ in jobs])
        raise
    unstarted = _Unstarted(jobs, ctx)
    complete = True
    ctx.watchdog = ctx.watchdog or Watchdog()
    ctx.watchdog.handed_back = False
    while (job := unstarted.take()) is not None:
        if should_stop():  # warm shutdown: hand back what has not started
            unstarted.hand_back(taken=job)
            complete = False
            break
        try:
            complete = _run_job(job, known.get(job[1].id), unstarted, pending, ctx) and complete
        except Exception:  # an outage: store what finished (waiting for the servers), give back the rest
            drop_broken_connections()
            pending.flush()
            unstarted.hand_back(taken=job)
            raise
        if pending.overdue():
            pending.flush()
    pending.flush()
    return complete and not ctx.watchdog.handed_back


def _run_job(job: tuple[Delivery, Message], known: tuple[str, int] | None, unstarted: _Unstarted,
             pending: _Pending, ctx: ExecutionContext) -> bool:
    """Run one message of a batch; False when the rest of the batch was handed back for it."""
    delivery, message = job
    if _already_handled(message, known):
        _resume_followups_or_dead_letter(delivery, message, ctx)
        pending.add(delivery)
        return True
    complete = True
    if _durations.get(message.task, LONG_TASK) >= LONG_TASK:
        pending.flush()  # expected to be long: store what finished, give back the rest, run it alone
        if len(unstarted):
            complete = not unstarted.hand_back()
    began = time.monotonic()
    if len(unstarted) or pending:
        ctx.watchdog.arm(unstarted, pending)
    try:
        outcome = run(message, ctx, delivery)
    except Exception as exc:
        if is_outage(exc):
            raise
        logger.exception("Handling %s[%s] failed", message.task, message.id)  # a hook or signal receiver
        outcome = _failure(message, exc, ctx, None)
    finally:
        ctx.watchdog.disarm()
    elapsed = time.monotonic() - began
    previous = _durations.get(message.task)
    _durations[message.task] = elapsed if previous is None else 0.7 * previous + 0.3 * elapsed
    if outcome is not None:
        pending.add(delivery, outcome)
    return complete


def save(outcomes: list[Outcome]) -> tuple[list[str], dict[str, bytes], set[str]]:
    """Plain outcomes in one write; chord members in one transaction per chord that counts them.
    A step that stops its chain is stored with the FAILURE of the steps that will never run, in one
    transaction. Returns what the caller must still pass to `notify.publish` to wake waiters."""
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
                chords.store_never_run(_rest_of_chain(outcome.message), outcome.result)
    else:
        wake = store.save_outcomes(plain, publish=False)
    for group_id, finished in members.items():
        chords.record_members(group_id, finished)
    return wake


def _rest_of_chain(message: Message) -> chain:
    return chain(*[maybe_signature(step) for step in reversed(message.chain)])


def run_eager(message: Message):
    """Run a message in this process through the worker's path; returns an EagerResult."""
    from ..result import EagerResult

    ctx = ExecutionContext(broker=None, hostname="eager", consumer_id="eager", eager=True)
    outcome = run(message, ctx, None)
    notify.publish(*save([outcome]))
    followed = finish(outcome, ctx)
    if outcome.state == states.RETRY and followed is not None:
        return followed  # the retried attempt's result
    if outcome.state == states.FAILURE and get_settings().TASK_EAGER_PROPAGATES:
        raise raisable(outcome.result)
    result = raisable(outcome.result) if isinstance(outcome.result, BaseException) else outcome.result
    return EagerResult(message.id, message.task, outcome.state, result, outcome.traceback)


def _decode_or_dead_letter(delivery: Delivery, ctx: ExecutionContext) -> Message | None:
    """The verified message, or None after storing it as a DeadLetter with the reason."""
    message = None
    if delivery.redeliveries > get_settings().MAX_REDELIVERIES + 2:
        # Failing it as WorkerLostError (in `run`) did not finish either: decoding it may be what
        # kills the worker, so do not even try.
        reason = f"handed out {delivery.redeliveries} times and never finished; not decoded again"
    else:
        try:
            message = decode(delivery.body, get_settings().signing_key)
            registry.get_task(message.task)
            return message
        except (DecodeError, NotRegistered) as exc:
            reason = str(exc)
        except Exception as exc:  # a body built to break the decoder must not break the consumer
            reason = f"the message could not be decoded: {exc!r}"
    _dead_letter(delivery, reason, ctx, task_name=message.task if message else "")
    return None


def _dead_letter(delivery: Delivery, reason: str, ctx: ExecutionContext, task_name: str = "") -> None:
    """Keep a message that cannot run, with the reason, for an operator (text made storable:
    a body may hold NUL bytes or invalid UTF-8)."""
    logger.error("Rejected message %s from queue %r: %s", delivery.key, delivery.queue, reason)
    escape = serialization.escape_text
    try:
        message_id = peek_id(delivery.body) or delivery.key
    except Exception:
        message_id = delivery.key
    body = escape(delivery.body.decode("utf-8", errors="backslashreplace"))
    try:
        DeadLetter.objects.create(message_id=escape(message_id)[:255], task_name=escape(task_name)[:255],
                                  queue=escape(delivery.queue)[:255], reason=escape(reason),
                                  worker=ctx.hostname[:255], body=body)
    except Exception as exc:
        if is_outage(exc):
            raise
        # Kept nowhere else: dropping it (with its body in the log) is the one way out of a loop.
        logger.critical("Could not keep message %s as a dead letter (%r); dropping it. Body: %.2000s",
                        delivery.key, exc, body)


def _follow_up_or_dead_letter(delivery: Delivery, outcome: Outcome, ctx: ExecutionContext) -> None:
    """Send what follows a stored outcome; if that fails for a reason other than an outage, keep
    the message as a dead letter saying so, and go on with the rest of the batch."""
    try:
        follow_up(outcome, ctx)
    except Exception as exc:
        if is_outage(exc):
            raise
        logger.exception("Sending what follows %s[%s] failed", outcome.message.task, outcome.message.id)
        _dead_letter(delivery, f"the task ended {outcome.state} but what follows it could not be sent: {exc!r}",
                     ctx, task_name=outcome.message.task)


def _resume_followups_or_dead_letter(delivery: Delivery, message: Message, ctx: ExecutionContext) -> None:
    try:
        _resume_followups(message, ctx)
    except Exception as exc:
        if is_outage(exc):
            raise
        logger.exception("Resuming what follows %s[%s] failed", message.task, message.id)
        _dead_letter(delivery, f"what follows the finished task could not be sent: {exc!r}", ctx,
                     task_name=message.task)


def _already_handled(message: Message, known: tuple[str, int] | None) -> bool:
    """A redelivered message whose attempt already finished, or a revoked one."""
    if known is None:
        return False
    state, retries = known
    if state == states.REVOKED:
        logger.info("Skipping revoked task %s[%s]", message.task, message.id)
        return True
    if state in states.READY_STATES or retries > message.retries + 1:
        return True
    # RETRY stored for this attempt but we died before sending the next one: run the attempt again.
    return retries == message.retries + 1 and state != states.RETRY


def run(message: Message, ctx: ExecutionContext, delivery: Delivery | None) -> Outcome | None:
    """Execute one message; None when it was handed back because its lock_key is busy."""
    now = timezone.now()
    if message.expires and message.expires_datetime < now:
        return Outcome(message, states.REVOKED, TaskRevokedError(f"expired at {message.expires}"),
                       hostname=ctx.hostname)
    if delivery is not None and delivery.redeliveries > get_settings().MAX_REDELIVERIES:
        error = WorkerLostError(f"the worker running it died {delivery.redeliveries} times; giving up")
        return Outcome(message, states.FAILURE, error, hostname=ctx.hostname)
    if message.lock and not ctx.eager:
        if not locks.acquire(message.lock, ctx.consumer_id):
            ctx.broker.release(delivery, delay=get_settings().LOCK_RETRY_DELAY)
            return None
        try:
            return _call(registry.get_task(message.task), message, ctx, delivery)
        finally:
            locks.release(message.lock, ctx.consumer_id)
    return _call(registry.get_task(message.task), message, ctx, delivery)


def _request_for(message: Message, ctx: ExecutionContext) -> Request:
    return Request(
        id=message.id, task=message.task, args=message.args, kwargs=message.kwargs, retries=message.retries,
        eta=message.eta_datetime, expires=message.expires_datetime, parent_id=message.parent_id,
        root_id=message.root_id, group_id=message.group_id, group_index=message.group_index,
        queue=message.queue, hostname=ctx.hostname, is_eager=ctx.eager, called_directly=False,
        headers=message.headers, link=message.link, link_error=message.link_error, chain=message.chain,
        chord=message.chord, time_limit=message.time_limit, soft_time_limit=message.soft_time_limit,
        ignore_result=message.ignore_result, lock=message.lock)


def _call(task, message: Message, ctx: ExecutionContext, delivery: Delivery | None) -> Outcome:
    started = timezone.now()
    track = task.track_started if task.track_started is not None else get_settings().TRACK_STARTED
    if track and not message.ignore_result:
        store.mark_started(message, ctx.hostname, started)
    ctx.on_task_start(delivery, message)
    retry: Retry | None = None
    try:
        signals.task_prerun.send(sender=task, task_id=message.id, task=task, args=message.args,
                                 kwargs=message.kwargs)
        with request_context(_request_for(message, ctx)):
            try:
                with soft_time_limit(message.soft_time_limit):
                    retval = task.run(task, *message.args, **message.kwargs) if task.bind else \
                        task.run(*message.args, **message.kwargs)
                encoded = store.encode_value(retval)  # an unstorable return value fails the task here
                return Outcome(message, states.SUCCESS, retval, hostname=ctx.hostname, started=started,
                               encoded=encoded)
            except Retry as exc:
                retry = exc
            except Exception as exc:
                if lost_database(exc):
                    raise  # an outage, not the task's failure: its message goes back, uncounted
                retry = _autoretry(task, exc)
                if retry is None:
                    return _failure(message, exc, ctx, started)
            except BaseException as exc:  # noqa: B036 - SystemExit etc. from task code fail the task
                return _failure(message, exc, ctx, started)
    finally:
        ctx.on_task_end()
    return _retry(task, message, retry, ctx, started)


def _autoretry(task, exc: Exception) -> Retry | None:
    """The Retry that autoretry_for asks for, or None (the task fails with `exc` or the final error)."""
    if not task.autoretry_for or not isinstance(exc, task.autoretry_for):
        return None
    if task.dont_autoretry_for and isinstance(exc, task.dont_autoretry_for):
        return None
    countdown = None
    if task.retry_backoff:
        from ..retries import backoff_countdown

        countdown = backoff_countdown(task.request.retries, task.retry_backoff, task.retry_backoff_max,
                                      task.retry_jitter)
    try:
        task.retry(exc=exc, countdown=countdown)
    except Retry as retry:
        return retry
    except Exception:
        return None  # past max_retries: the original exception fails the task
    return None


def _failure(message: Message, exc: BaseException, ctx: ExecutionContext, started) -> Outcome:
    traceback = store.format_traceback(exc)
    logger.error("Task %s[%s] failed: %s: %s", message.task, message.id, type(exc).__name__, printable(exc))
    return Outcome(message, states.FAILURE, exc, traceback=traceback, hostname=ctx.hostname, started=started)


def _retry(task, message: Message, retry: Retry, ctx: ExecutionContext, started) -> Outcome:
    """Describe the next attempt; `finish` sends it once the RETRY state is stored."""
    when = retry.when
    timing = {"eta": when} if hasattr(when, "tzinfo") else {"countdown": when or 0}
    args = retry.call_args if retry.call_args is not None else message.args
    kwargs = retry.call_kwargs if retry.call_kwargs is not None else message.kwargs
    options = dict(task_id=message.id, retries=message.retries + 1, queue=message.queue, link=message.link,
                   link_error=message.link_error, chain=message.chain, chord=message.chord,
                   parent_id=message.parent_id, root_id=message.root_id, group_id=message.group_id,
                   group_index=message.group_index, time_limit=message.time_limit,
                   soft_time_limit=message.soft_time_limit, ignore_result=message.ignore_result,
                   headers=message.headers, expires=message.expires_datetime, lock=message.lock)
    options.update(retry.options)
    exc = retry.exc if retry.exc is not None else retry
    logger.info("Task %s[%s] retry %d in %s: %s", message.task, message.id, message.retries + 1, when, printable(exc))
    outcome = Outcome(message, states.RETRY, exc, traceback=store.format_traceback(exc), hostname=ctx.hostname,
                      started=started, retries=message.retries + 1)
    outcome.next_attempt = (args, kwargs, {**options, **timing})
    return outcome


def finish(outcome: Outcome, ctx: ExecutionContext):
    """After the outcome is stored: send the retry or follow-ups, then hooks and signals."""
    followed = follow_up(outcome, ctx)
    _run_hooks(registry.get_task(outcome.message.task), outcome)
    return followed


def follow_up(outcome: Outcome, ctx: ExecutionContext):
    """Send what comes next (the retry, links, the next chain step, errbacks); returns a retry's result."""
    message, task = outcome.message, registry.get_task(outcome.message.task)
    followed = None
    if outcome.state == states.RETRY:
        from ..producer import send

        args, kwargs, options = outcome.next_attempt
        followed = send(message.task, tuple(args), dict(kwargs), task=task, **options)
    elif outcome.state == states.SUCCESS and (message.link or message.chain):
        # the value as stored: the live object may have changed since the task returned
        _send_links(message, serialization.from_jsonable(outcome.encoded))
    elif outcome.state in (states.FAILURE, states.REVOKED):
        if outcome.state == states.FAILURE:
            call_errbacks(message.link_error, _request_for(message, ctx), outcome.result, outcome.traceback)
        if message.chain:  # the later steps will never run (`save` stored that with this outcome)
            chords.fail_canvas(_rest_of_chain(message), outcome.result, call_errbacks_of_entry=False,
                               rows_stored=True)
    return followed


def _send_links(message: Message, retval: Any) -> None:
    lineage = {"parent_id": message.id, "root_id": message.root_id or message.id}
    for index, callback in enumerate(message.link):
        sig = maybe_signature(callback)
        sig.apply_async((retval,), task_id=sig.id or derived_id(message.id, f"link{index}"), **lineage)
    if message.chain:
        step, later = maybe_signature(message.chain[-1]), message.chain[:-1]
        rest = {"chain": later} if later else {}  # only tasks precede the end
        step.apply_async((retval,), task_id=step.id or derived_id(message.id, "chain"), **rest, **lineage)


def _resume_followups(message: Message, ctx: ExecutionContext) -> None:
    """A redelivered message that already finished: redo what may not have happened after it
    (sending the next step, settling its chord). Sends are idempotent: same ids, deduplicated."""
    row = store.fetch(message.id)
    if row is None:
        return
    if message.chord and row.state in states.READY_STATES:
        chords.settle(message.chord["group_id"])
    if row.state == states.SUCCESS and (message.link or message.chain):
        _send_links(message, serialization.from_jsonable(row.result))


def _run_hooks(task, outcome: Outcome) -> None:
    message = outcome.message
    einfo = ExceptionInfo(outcome.result, outcome.traceback or "") if outcome.traceback else None
    try:
        if outcome.state == states.SUCCESS:
            task.on_success(outcome.result, message.id, message.args, message.kwargs)
            signals.task_success.send(sender=task, result=outcome.result)
        elif outcome.state == states.FAILURE:
            task.on_failure(outcome.result, message.id, message.args, message.kwargs, einfo)
            signals.task_failure.send(sender=task, task_id=message.id, exception=outcome.result,
                                      args=message.args, kwargs=message.kwargs, einfo=einfo)
        elif outcome.state == states.RETRY:
            task.on_retry(outcome.result, message.id, message.args, message.kwargs, einfo)
            signals.task_retry.send(sender=task, request=message, reason=outcome.result, einfo=einfo)
        elif outcome.state == states.REVOKED:
            signals.task_revoked.send(sender=task, request=message, expired=True)
        task.after_return(outcome.state, outcome.result, message.id, message.args, message.kwargs, einfo)
        signals.task_postrun.send(sender=task, task_id=message.id, task=task, args=message.args,
                                  kwargs=message.kwargs, retval=outcome.result, state=outcome.state)
    except Exception:
        logger.exception("A hook of %s[%s] raised", message.task, message.id)


def fail_killed(delivery: Delivery, body: bytes, hostname: str, error: BaseException,
                broker: Broker) -> None:
    """The supervisor killed a child (hard time limit, revoked with terminate): store its outcome, ack."""
    if not body:  # too large for the task slot: read it from the broker, which holds it until the ack
        body = broker.body(delivery.key) or b""
    try:
        message = decode(body, get_settings().signing_key)
    except DecodeError:
        broker.ack([delivery])
        return
    state = states.REVOKED if isinstance(error, TaskRevokedError) else states.FAILURE
    outcome = Outcome(message, state, error, traceback=f"{type(error).__name__}: {error}\n", hostname=hostname)
    notify.publish(*save([outcome]))
    finish(outcome, ExecutionContext(broker, hostname, delivery.consumer_id))
    broker.ack([delivery])

