"""One message, run: expiry and redelivery checks, the lock_key, STARTED, the function under its
soft time limit, and the outcome it makes (SUCCESS, RETRY with the next attempt, or FAILURE);
then the task's hooks and signals. Also an eager run in the caller's process, and the outcome of
a task whose process the supervisor killed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from types import CoroutineType
from typing import Any

from django.utils import timezone

from .. import locks, notify, ratelimits, registry, signals, states, store
from ..brokers import Broker, Delivery
from ..codecs import Outcome, encode_value, format_traceback
from ..conf import get_settings
from ..exceptions import DecodeError, Retry, TaskRevokedError, WorkerLostError, printable, raisable
from ..log import short_repr
from ..message import Message, decode
from ..outages import lost_database
from ..request import Request, request_context
from ..result import EagerResult
from ..retries import backoff_countdown
from . import aio, continuation
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
    watchdog: Any = None  # batch.Watchdog: one per consumer, made on its first batch
    should_stop: Callable[[], bool] = lambda: False  # a warm shutdown: stop holding through outages


class ExceptionInfo:
    """What on_failure/on_retry receive as `einfo`."""

    def __init__(self, exc: BaseException, traceback: str):
        self.exception, self.type, self.traceback = exc, type(exc), traceback

    def __str__(self) -> str:
        return self.traceback


def already_handled(message: Message, known: tuple[str, int] | None, revoked: bool = False) -> bool:
    """A redelivered message whose attempt already finished, or a revoked one (`revoked`: as the
    broker found it)."""
    if known is None and not revoked:
        return False
    state, retries = known or (states.REVOKED, 0)
    if state == states.REVOKED or (revoked and state not in states.READY_STATES):
        logger.info("Skipping revoked task %s[%s]", message.task, message.id)
        return True
    if state in states.READY_STATES or retries > message.retries + 1:
        return True
    # RETRY stored for this attempt but we died before sending the next one: run the attempt again.
    return retries == message.retries + 1 and state != states.RETRY


def _hand_back(ctx: ExecutionContext, delivery: Delivery | None, delay: float) -> None:
    assert ctx.broker is not None and delivery is not None  # a worker's run, not an eager one
    ctx.broker.release([delivery], delay=delay)


def run(message: Message, ctx: ExecutionContext, delivery: Delivery | None) -> Outcome | None:
    """Execute one message; None when it was handed back: its lock_key is busy, or its rate_limit
    has no token for it yet."""
    task, refused = _admit(message, ctx, delivery)
    if task is None:
        return refused
    try:
        return _call(task, message, ctx, delivery)
    finally:
        _release_lock(message, ctx)


def _admit(message: Message, ctx: ExecutionContext, delivery: Delivery | None) -> tuple[Any, Outcome | None]:
    """The task to run now (its lock_key taken), or None and why not: an outcome (expired, or its
    worker died too often), or None (handed back for later: its lock or a rate token)."""
    now = timezone.now()
    if message.expires and datetime.fromisoformat(message.expires) < now:
        logger.info("Task %s[%s] expired at %s: not run", message.task, message.id, message.expires)
        return None, Outcome(message, states.REVOKED, TaskRevokedError(f"expired at {message.expires}"),
                             hostname=ctx.hostname)
    if delivery is not None and delivery.redeliveries > get_settings().MAX_REDELIVERIES:
        error = WorkerLostError(f"the worker running it died {delivery.redeliveries} times; giving up")
        return None, Outcome(message, states.FAILURE, error, hostname=ctx.hostname)
    task = registry.get_task(message.task)
    if ctx.eager:
        return task, None
    per_second = ratelimits.rate_of(message.task, task.rate_limit)
    if per_second is not None:
        wait = ratelimits.wait_for_token(message.task, per_second)
        if wait:
            _hand_back(ctx, delivery, ratelimits.hand_back_delay(message.task, wait, per_second))
            return None, None
    if message.lock and not locks.acquire(message.lock, ctx.consumer_id):
        _hand_back(ctx, delivery, get_settings().LOCK_RETRY_DELAY)
        return None, None
    return task, None


def _release_lock(message: Message, ctx: ExecutionContext) -> None:
    if message.lock and not ctx.eager:
        locks.release(message.lock, ctx.consumer_id)


def _start(task, message: Message, ctx: ExecutionContext, delivery: Delivery | None):
    """The worker's default limits on the message, STARTED stored; returns the start time."""
    started = timezone.now()
    settings = get_settings()
    # the worker's defaults (Celery's task_time_limit, task_soft_time_limit); none for eager runs, as in Celery
    if message.time_limit is None and settings.TASK_TIME_LIMIT and not ctx.eager:
        message.time_limit = settings.TASK_TIME_LIMIT
    if message.soft_time_limit is None and settings.TASK_SOFT_TIME_LIMIT and not ctx.eager:
        message.soft_time_limit = settings.TASK_SOFT_TIME_LIMIT
    track = task.track_started if task.track_started is not None else settings.TRACK_STARTED
    if track and not message.ignore_result:
        store.mark_started(message, ctx.hostname, started)
    ctx.on_task_start(delivery, message)
    return started


def _call(task, message: Message, ctx: ExecutionContext, delivery: Delivery | None) -> Outcome:
    started = _start(task, message, ctx, delivery)
    try:
        with request_context(Request.from_message(message, ctx.hostname, ctx.eager)):
            signals.task_prerun.send(sender=task, task_id=message.id, task=task, args=message.args,
                                     kwargs=message.kwargs)
            try:
                with soft_time_limit(message.soft_time_limit):
                    retval = _invoke(task, message)
                if type(retval) is CoroutineType:  # an `async def` task
                    retval = aio.run(retval, message.soft_time_limit)
                return _succeeded(message, ctx, retval, started)
            except BaseException as exc:  # noqa: B036 - SystemExit etc. from task code fail the task
                return _ended(task, message, ctx, exc, started)
    finally:
        ctx.on_task_end()


def _invoke(task, message: Message) -> Any:
    return task.run(task, *message.args, **message.kwargs) if task.bind else task.run(*message.args, **message.kwargs)


def _succeeded(message: Message, ctx: ExecutionContext, retval: Any, started) -> Outcome:
    encoded = encode_value(retval)  # an unstorable return value fails the task here
    if logger.isEnabledFor(logging.INFO):  # cached by logging: the only cost below INFO
        logger.info("Task %s[%s] succeeded in %.3fs: %s", message.task, message.id, _runtime(started),
                    short_repr(retval))
    return Outcome(message, states.SUCCESS, retval, hostname=ctx.hostname, started=started, encoded=encoded)


def _ended(task, message: Message, ctx: ExecutionContext, exc: BaseException, started) -> Outcome:
    """The outcome of a call that raised: RETRY (asked for, or by autoretry_for) or FAILURE."""
    if isinstance(exc, Retry):
        return _retry(task, message, exc, ctx, started)
    if isinstance(exc, Exception):
        if lost_database(exc):
            raise exc  # an outage, not the task's failure: its message goes back, uncounted
        retry = _autoretry(task, exc)
        if retry is not None:
            return _retry(task, message, retry, ctx, started)
    return failure(message, exc, ctx.hostname, started)


@dataclass
class Awaiting:
    """An `async def` task begun by `begin`: its coroutine is awaited on the asyncio pool's loop,
    then `end` makes its outcome."""

    task: Any
    message: Message
    coroutine: Coroutine[Any, Any, Any]
    started: datetime


def begin(message: Message, ctx: ExecutionContext, delivery: Delivery | None) -> Outcome | Awaiting | None:
    """`run` for the asyncio pool (worker/aioconsumer.py), up to the await: an async task's
    coroutine is returned unstarted, with its lock_key held until `end`; a sync task runs to its
    end here (no soft time limit off the main thread, as in the threads pool)."""
    task, refused = _admit(message, ctx, delivery)
    if task is None:
        return refused
    awaiting = None
    try:
        started = _start(task, message, ctx, delivery)
        with request_context(Request.from_message(message, ctx.hostname)):
            signals.task_prerun.send(sender=task, task_id=message.id, task=task, args=message.args,
                                     kwargs=message.kwargs)
            try:
                retval = _invoke(task, message)
                if type(retval) is CoroutineType:
                    awaiting = Awaiting(task, message, retval, started)
                    return awaiting
                return _succeeded(message, ctx, retval, started)
            except BaseException as exc:  # noqa: B036 - as in _call
                return _ended(task, message, ctx, exc, started)
    finally:
        if awaiting is None:
            _release_lock(message, ctx)


def end(awaiting: Awaiting, ctx: ExecutionContext, retval: Any = None, error: BaseException | None = None) -> Outcome:
    """The outcome of an awaited async task: its value, or what it raised (a TaskRevokedError:
    cancelled by a revoke with terminate, REVOKED)."""
    message = awaiting.message
    try:
        if isinstance(error, TaskRevokedError):
            return Outcome(message, states.REVOKED, error, traceback=f"{type(error).__name__}: {error}\n",
                           hostname=ctx.hostname, started=awaiting.started)
        with request_context(Request.from_message(message, ctx.hostname)):
            if error is None:
                try:
                    return _succeeded(message, ctx, retval, awaiting.started)
                except Exception as exc:
                    error = exc
            return _ended(awaiting.task, message, ctx, error, awaiting.started)
    finally:
        _release_lock(message, ctx)


def _autoretry(task, exc: Exception) -> Retry | None:
    """The Retry that autoretry_for asks for, or None (the task fails with `exc` or the final error)."""
    if not task.autoretry_for or not isinstance(exc, task.autoretry_for):
        return None
    if task.dont_autoretry_for and isinstance(exc, task.dont_autoretry_for):
        return None
    options = dict(task.retry_kwargs)  # as Celery: retry_kwargs go to retry(), backoff sets the countdown
    if task.retry_backoff:
        options["countdown"] = backoff_countdown(task.request.retries, task.retry_backoff, task.retry_backoff_max,
                                                 task.retry_jitter)
    try:
        task.retry(exc=exc, **options)
    except Retry as retry:
        return retry
    except Exception:
        return None  # past max_retries: the original exception fails the task
    return None


def _runtime(started) -> float:
    return (timezone.now() - started).total_seconds()


def failure(message: Message, exc: BaseException, hostname: str, started) -> Outcome:
    traceback = format_traceback(exc)
    task = registry.find(message.task)
    took = f" in {_runtime(started):.3f}s" if started is not None else ""
    if task is not None and task.throws and isinstance(exc, task.throws):  # expected: INFO, as Celery
        logger.info("Task %s[%s] raised expected%s: %s: %s", message.task, message.id, took, type(exc).__name__,
                    printable(exc))
    else:
        logger.error("Task %s[%s] failed%s: %s: %s", message.task, message.id, took, type(exc).__name__,
                     printable(exc))
    return Outcome(message, states.FAILURE, exc, traceback=traceback, hostname=hostname, started=started)


def _retry(task, message: Message, retry: Retry, ctx: ExecutionContext, started) -> Outcome:
    """Describe the next attempt; `finish` sends it once the RETRY state is stored."""
    when = retry.when
    timing = {"eta": when} if hasattr(when, "tzinfo") else {"countdown": when or 0}
    args = retry.call_args if retry.call_args is not None else message.args
    kwargs = retry.call_kwargs if retry.call_kwargs is not None else message.kwargs
    options = {**message.send_options(), "retries": message.retries + 1}
    options.update(retry.options)
    exc = retry.exc if retry.exc is not None else retry
    logger.info("Task %s[%s] retry %d in %s: %s", message.task, message.id, message.retries + 1, when, printable(exc))
    outcome = Outcome(message, states.RETRY, exc, traceback=format_traceback(exc), hostname=ctx.hostname,
                      started=started, retries=message.retries + 1)
    outcome.next_attempt = (args, kwargs, {**options, **timing})
    return outcome


def finish(outcome: Outcome, ctx: ExecutionContext):
    """After the outcome is stored: send the retry or follow-ups, then hooks and signals."""
    followed = continuation.follow_up(outcome, ctx.hostname, ctx.eager)
    run_hooks(registry.get_task(outcome.message.task), outcome)
    return followed


_OUTCOME_SIGNALS = (signals.task_success, signals.task_failure, signals.task_retry, signals.task_revoked,
                    signals.task_postrun)


def run_hooks(task, outcome: Outcome) -> None:
    if any(signal.receivers for signal in _OUTCOME_SIGNALS):
        # receivers read `sender.request` as in Celery, where they run inside the task's trace
        with request_context(Request.from_message(outcome.message, outcome.hostname)):
            _run_hooks(task, outcome)
    else:
        _run_hooks(task, outcome)


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
                                      args=message.args, kwargs=message.kwargs,
                                      traceback=getattr(outcome.result, "__traceback__", None), einfo=einfo)
        elif outcome.state == states.RETRY:
            task.on_retry(outcome.result, message.id, message.args, message.kwargs, einfo)
            if signals.task_retry.receivers:
                assert outcome.next_attempt is not None  # a RETRY outcome carries it
                options = outcome.next_attempt[2]
                signals.task_retry.send(sender=task, request=Request.from_message(message, outcome.hostname),
                                        reason=Retry(exc=outcome.result, when=options.get(
                                            "countdown", options.get("eta"))), einfo=einfo)
        elif outcome.state == states.REVOKED:
            # here only expired (execute.run) or stopped by revoke(terminate=True) (fail_killed)
            expired = str(outcome.result).startswith("expired")
            signals.task_revoked.send(sender=task, request=Request.from_message(message, outcome.hostname),
                                      terminated=not expired, signum=outcome.signum, expired=expired)
        task.after_return(outcome.state, outcome.result, message.id, message.args, message.kwargs, einfo)
        signals.task_postrun.send(sender=task, task_id=message.id, task=task, args=message.args,
                                  kwargs=message.kwargs, retval=outcome.result, state=outcome.state)
    except Exception:
        logger.exception("A hook of %s[%s] raised", message.task, message.id)


def fail_killed(delivery: Delivery, body: bytes, hostname: str, error: BaseException,
                broker: Broker, task_name: str = "", signum: int | None = None) -> None:
    """The supervisor killed a child (hard time limit, revoked with terminate: `signum` the signal the
    revoke asked for): store its outcome, ack."""
    if not body:  # too large for the task slot: read it from the broker, which holds it until the ack
        body = broker.inspect([delivery.key]).bodies.get(delivery.key, b"")
    if not body and not broker.reads_by_key:
        # RabbitMQ hands the message out again: the outcome stored by id here makes that copy
        # continue the workflow (links, chords) instead of running (see batch: already handled)
        _fail_by_id(delivery.key.split("~", 1)[0], task_name, error)
        return
    try:
        message = decode(body, get_settings().signing_key)
    except DecodeError:
        broker.ack([delivery])
        return
    state = states.REVOKED if isinstance(error, TaskRevokedError) else states.FAILURE
    if state == states.REVOKED:  # its row is REVOKED already (by the revoke): say it was stopped
        store.mark_stopped(message.id, str(error))
    outcome = Outcome(message, state, error, traceback=f"{type(error).__name__}: {error}\n", hostname=hostname,
                      signum=signum)
    notify.publish(*continuation.save([outcome]))
    finish(outcome, ExecutionContext(broker, hostname, delivery.consumer_id))
    broker.ack([delivery])



def _fail_by_id(task_id: str, task_name: str, error: BaseException) -> None:
    traceback = f"{type(error).__name__}: {error}\n"
    if isinstance(error, TaskRevokedError):
        store.mark_revoked([task_id], str(error))
        store.mark_stopped(task_id, str(error))
    else:
        store.save_failures([task_id], error, traceback, {task_id: task_name})


def run_eager(message: Message, throw: bool | None = None):
    """Run a message in this process through the worker's path; returns an EagerResult. A failure is
    raised here when `throw` (None: TASKQUEUE_TASK_EAGER_PROPAGATES) says so."""
    ctx = ExecutionContext(broker=None, hostname="eager", consumer_id="eager", eager=True)
    outcome = run(message, ctx, None)
    assert outcome is not None  # only a worker's run is handed back (lock_key busy, rate_limit)
    notify.publish(*continuation.save([outcome]))
    followed = finish(outcome, ctx)
    if outcome.state == states.RETRY and followed is not None:
        return followed  # the retried attempt's result
    if outcome.state == states.FAILURE and (get_settings().TASK_EAGER_PROPAGATES if throw is None else throw):
        raise raisable(outcome.result)
    result = raisable(outcome.result) if isinstance(outcome.result, BaseException) else outcome.result
    return EagerResult(message.id, message.task, outcome.state, result, outcome.traceback)


