"""One batch of deliveries, top to bottom: decode → check → run (`execute`) → store and follow up
(`continuation`) → ack.

Messages are acked and released here (and in `execute`: a busy lock_key, a killed task). A
message is acked only after its outcome is stored and what follows it is sent; whatever goes
wrong with one message stays with it (`rejects`).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Collection

from django.db import connections

from .. import notify, registry, sqlexec, states, store
from ..brokers import Delivery
from ..codecs import Outcome
from ..message import Message
from ..outages import drop_broken_connections, is_outage, through_outages
from . import continuation, execute, rejects
from .execute import ExecutionContext

logger = logging.getLogger("taskqueue.worker")


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
MAX_EXTENSIONS = 32  # reserves a batch may add when its tasks sent what comes next (see `process`)
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
            assert self.ctx.broker is not None  # a worker's batch
            # cleared once released: if the release fails (an outage), the batch still runs them, or
            # the consumer gives back all it holds
            self.ctx.broker.release([delivery for delivery, _ in jobs])
            self._jobs.clear()
        return bool(jobs)


class Watchdog:
    """A thread that, once the current task of a batch runs long, hands back the unstarted rest,
    stops a broker's pushes to the consumer (RabbitMQ), and stores (and acks) what finished before it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: tuple[_Unstarted, Pending, float] | None = None
        self._timing = False  # the thread waits for a deadline: a later arming needs no wake-up
        self.handed_back = False
        self._thread: threading.Thread | None = None
        self._pid = 0

    def arm(self, unstarted: _Unstarted, pending: Pending) -> None:
        if self._thread is None or self._pid != os.getpid():  # started lazily, in the process that runs tasks
            self._thread = threading.Thread(target=self._watch, name="taskqueue-watchdog", daemon=True)
            self._pid = os.getpid()
            self._thread.start()
        with self._cond:
            self._armed = (unstarted, pending, time.monotonic() + WATCHDOG_AFTER)
            if not self._timing:  # a thread timing an earlier deadline finds this one when that passes
                self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._armed = None

    def _watch(self) -> None:
        while True:  # a daemon thread for the life of the consumer; each wait is bounded
            with self._cond:
                if self._armed is None:
                    self._timing = False
                    self._cond.wait(1.0)
                    continue
                unstarted, pending, deadline = self._armed
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._timing = True
                    self._cond.wait(remaining)
                    continue
                self._armed = None
            try:
                if unstarted.hand_back():
                    self.handed_back = True
                _running_long(unstarted.ctx)
                pending.flush(run_hooks=False, hold=False)  # hooks and waiting stay with the consumer's thread
            except Exception:  # e.g. the broker is down: the consumer's own flush or the leases recover
                logger.exception("Could not hand back or store the rest of a batch")
            finally:
                connections.close_all()  # this thread's own connections (database broker)


def _running_long(ctx: ExecutionContext) -> None:
    """Tell a broker that sends messages ahead (RabbitMQ) to stop: none may wait behind this task."""
    if ctx.broker is not None and ctx.broker.pushing(ctx.consumer_id):
        ctx.broker.running_long(ctx.consumer_id)


class Pending:
    """Outcomes and deliveries of a batch that are finished but not yet stored and acked."""

    def __init__(self, ctx: ExecutionContext):
        self.ctx = ctx
        self.to_ack: list[Delivery] = []
        self.finished: list[tuple[Delivery, Outcome]] = []
        self.since: float | None = None
        self.hooks_due: list[Outcome] = []  # stored by the watchdog, hooks not run yet
        self.sent_ahead: set[str] = set()  # keys of finished deliveries whose follow-ups went already
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

    def send_ahead_and_take(self, take_more: Callable[[], list[Delivery]]) -> list[Delivery] | None:
        """Send the links and next chain step of each success not sent yet, before its outcome is
        stored (as a flush does first), then `take_more`: what it took, or None when nothing was
        sent. The broker may carry the sends in that reserve's round trip; if either fails, the
        flush sends them again."""
        with self._lock:
            due = [(delivery, outcome) for delivery, outcome in self.finished
                   if delivery.key not in self.sent_ahead and _sent_ahead(outcome)]
            if not due:
                return None
            broker = self.ctx.broker
            assert broker is not None  # a worker's batch
            try:
                with broker.sends_with_next_reserve():
                    with broker.writes_before_ack():  # their acks come after these sends
                        for delivery, outcome in due:
                            _follow_up(delivery, outcome, self.ctx)
                            self.sent_ahead.add(delivery.key)
                    return take_more()
            except BaseException:
                self.sent_ahead.difference_update(delivery.key for delivery, _ in due)
                raise

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
                steps = _FlushSteps(finished, to_ack, self.ctx, self.sent_ahead)
                try:
                    if hold:
                        through_outages(steps.run, "Storing outcomes", self.ctx.should_stop)
                    else:
                        steps.run()
                except BaseException:  # keep them: the next flush, or the consumer's give-back, has them
                    # (a dead-lettered one, its outcome None, only waits for its ack)
                    self.finished[:0] = [(d, o) for d, o in steps.finished if o is not None]
                    self.to_ack[:0] = steps.to_ack + [d for d, o in steps.finished if o is None]
                    self.since = self.since or time.monotonic()
                    raise
                self.sent_ahead.difference_update(delivery.key for delivery, _ in finished)
            self.hooks_due += outcomes
            if not run_hooks:
                return
            due, self.hooks_due = self.hooks_due, []
        for outcome in due:
            execute.run_hooks(registry.get_task(outcome.message.task), outcome)


class _FlushSteps:
    """The steps of one flush, each done once even when `run` is called again after an outage."""

    def __init__(self, finished: list[tuple[Delivery, Outcome]], to_ack: list[Delivery], ctx: ExecutionContext,
                 sent_before: Collection[str] = ()):
        self.finished, self.to_ack, self.ctx = finished, to_ack, ctx
        self.wake: tuple | None = None
        self.sent_ahead: set[int] = {index for index, (delivery, _) in enumerate(finished)
                                     if delivery.key in sent_before}
        self.looked_ahead = 0
        self.followed = 0

    def run(self) -> None:
        broker = self.ctx.broker
        assert broker is not None  # a worker's batch has a broker
        with broker.writes_before_ack():  # the sends and writes this flush makes before its ack
            self._run(broker)

    def _run(self, broker) -> None:
        # A success's links and next chain step go before its result is stored, as in Celery: the
        # next step runs on another consumer while this one writes. Before the ack all the same.
        while self.looked_ahead < len(self.finished):
            delivery, outcome = self.finished[self.looked_ahead]
            if self.looked_ahead not in self.sent_ahead and _sent_ahead(outcome):
                _follow_up(delivery, outcome, self.ctx)
                self.sent_ahead.add(self.looked_ahead)
            self.looked_ahead += 1
        if self.wake is None:
            rider = self._ack_rider(broker)
            with sqlexec.visible_first(rider):  # waiters see the results at once; the ack waits for the disk
                self.wake = self._save()
            if rider is not None and rider.rode:  # acked in the write's own transaction: done
                notify.publish(*self.wake)
                return
        while self.followed < len(self.finished):  # before waking anyone
            delivery, outcome = self.finished[self.followed]
            if outcome is not None and self.followed not in self.sent_ahead:
                _follow_up(delivery, outcome, self.ctx)
            self.followed += 1
        notify.publish(*self.wake)
        try:
            durable = sqlexec.make_durable()
        except BaseException:
            self.wake = None  # a server that went away may have lost what it had not flushed: write again
            raise
        if not durable:  # the server cannot be asked to flush: write them again, each waiting for the disk
            self.wake = None
            return self._run(broker)
        broker.ack(self._all_deliveries())

    def _ack_rider(self, broker) -> sqlexec.Rider | None:
        """The ack, to go in the outcomes' write where the broker offers it and nothing is to be
        sent after that write."""
        if not continuation.in_one_write([outcome for _, outcome in self.finished]):
            return None
        return broker.ack_rider(self._all_deliveries())

    def _all_deliveries(self) -> list[Delivery]:
        """What this flush acks: the deliveries without an outcome and those of the outcomes."""
        return self.to_ack + [delivery for delivery, _ in self.finished]

    def _save(self) -> tuple:
        try:
            return continuation.save([outcome for _, outcome in self.finished])
        except Exception as exc:
            if is_outage(exc):
                raise
            logger.exception("Storing a batch of outcomes failed; storing them one by one")
        ids: list[str] = []
        notices: dict[str, bytes] = {}
        done: set[str] = set()
        for index, (delivery, outcome) in enumerate(self.finished):
            stored, wake = self._save_one(delivery, outcome)
            self.finished[index] = (delivery, stored)  # type: ignore[assignment]  # None: dead-lettered
            ids += wake[0]
            notices.update(wake[1])
            done |= wake[2]
        return ids, notices, done

    def _save_one(self, delivery: Delivery, outcome: Outcome) -> tuple[Outcome | None, tuple]:
        """The outcome stored, or the failure to store it stored in its place, or None once
        dead-lettered; with what wakes its waiters."""
        try:
            return outcome, continuation.save([outcome])
        except Exception as exc:
            if is_outage(exc):
                raise
            error = RuntimeError(f"the task ended {outcome.state} but its outcome could not be stored: {exc!r}")
        substitute = Outcome(outcome.message, states.FAILURE, error, traceback=outcome.traceback,
                             hostname=outcome.hostname, started=outcome.started)
        try:
            return substitute, continuation.save([substitute])
        except Exception as exc:
            if is_outage(exc):
                raise
            rejects.dead_letter(delivery, f"{error}; storing that failed too: {exc!r}", self.ctx.hostname,
                                task_name=outcome.message.task)
            return None, ([], {}, set())


def process(deliveries: list[Delivery], ctx: ExecutionContext, should_stop: Callable[[], bool] = lambda: False,
            take_more: Callable[[], list[Delivery]] | None = None) -> bool:
    """Run a batch; returns False when it was cut short (a long task, or a warm shutdown).

    With `take_more` (a reserve that does not wait), a batch whose tasks sent a next chain step or
    a link goes on with what it finds waiting then, before storing anything: the next step usually,
    run here at once instead of on a consumer still busy storing the step before (at most
    FLUSH_AFTER seconds and MAX_EXTENSIONS reserves).

    Whatever goes wrong with one message stays with it (a dead letter, or the task failed); only
    an outage leaves this function, after storing what finished and giving back what did not."""
    ctx.should_stop = should_stop
    pending = Pending(ctx)
    ctx.watchdog = ctx.watchdog or Watchdog()
    ctx.watchdog.handed_back = False
    complete = _run_all(deliveries, pending, ctx, should_stop)
    extensions = 0
    while (take_more is not None and complete and extensions < MAX_EXTENSIONS and not should_stop()
           and not pending.overdue()):
        try:
            more = pending.send_ahead_and_take(take_more)
        except Exception as exc:
            if not is_outage(exc):
                logger.exception("Taking more for a batch failed")
                break
            # What finished is stored first (held through the outage); then the consumer gives back
            # what a reserve whose reply was lost may have leased to it.
            pending.flush()
            raise
        if not more:
            break
        extensions += 1
        complete = _run_all(more, pending, ctx, should_stop, taken_more=True)
    pending.flush()
    return complete and not ctx.watchdog.handed_back


def _run_all(deliveries: list[Delivery], pending: Pending, ctx: ExecutionContext,
             should_stop: Callable[[], bool], taken_more: bool = False) -> bool:
    """Decode and run these deliveries, their outcomes into `pending` (stored when overdue).
    `taken_more`: what a batch took after its tasks sent it (see `process`)."""
    jobs: list[tuple[Delivery, Message]] = []
    for delivery in deliveries:
        message = rejects.decode_or_dead_letter(delivery, ctx.hostname)
        if message is None:
            pending.add(delivery)
        else:
            jobs.append((delivery, message))
    # Only a redelivery or a retry can meet a stored outcome, or a message the broker marked revoked.
    seen_before = [m.id for d, m in jobs if d.redeliveries or m.retries or d.revoked]
    try:
        known = store.known_states(seen_before) if seen_before else {}
    except Exception:
        pending.flush()  # dead letters found above are acked; the rest goes back
        assert ctx.broker is not None  # a worker's batch
        ctx.broker.release([delivery for delivery, _ in jobs])
        raise
    unstarted = _Unstarted(jobs, ctx)
    complete = True
    while (job := unstarted.take()) is not None:
        if should_stop():  # warm shutdown: hand back what has not started
            unstarted.hand_back(taken=job)
            complete = False
            break
        try:
            complete = _run_job(job, known.get(job[1].id), unstarted, pending, ctx, taken_more) and complete
        except Exception:  # an outage: store what finished (waiting for the servers), give back the rest
            drop_broken_connections()
            pending.flush()
            unstarted.hand_back(taken=job)
            raise
        if pending.overdue():
            pending.flush()
    return complete


def _run_job(job: tuple[Delivery, Message], known: tuple[str, int] | None, unstarted: _Unstarted,
             pending: Pending, ctx: ExecutionContext, taken_more: bool = False) -> bool:
    """Run one message of a batch; False when the rest of the batch was handed back for it.
    A step the batch took after sending it runs without storing what finished first: it follows
    those outcomes, and the watchdog stores them if it runs long."""
    delivery, message = job
    if execute.already_handled(message, known, delivery.revoked):
        rejects.contained(lambda: continuation.resume(message, ctx.hostname), delivery, message, ctx.hostname,
                          "resending what follows the finished task")
        pending.add(delivery)
        return True
    complete = True
    if _durations.get(message.task, LONG_TASK) >= LONG_TASK and not taken_more:
        _running_long(ctx)  # expected to be long: what a broker pushed ahead goes to other consumers,
        pending.flush()  # what finished is stored, the rest given back: it runs alone
        if len(unstarted):
            complete = not unstarted.hand_back()
    began = time.monotonic()
    if len(unstarted) or pending:
        ctx.watchdog.arm(unstarted, pending)
    try:
        outcome = execute.run(message, ctx, delivery)
    except Exception as exc:
        if is_outage(exc):
            raise
        logger.exception("Handling %s[%s] failed", message.task, message.id)  # a hook or signal receiver
        outcome = execute.failure(message, exc, ctx.hostname, None)
    finally:
        ctx.watchdog.disarm()
    elapsed = time.monotonic() - began
    previous = _durations.get(message.task)
    _durations[message.task] = elapsed if previous is None else 0.7 * previous + 0.3 * elapsed
    if outcome is not None:
        pending.add(delivery, outcome)
    return complete


def _sent_ahead(outcome: Outcome) -> bool:
    """Whether what follows this outcome goes before it is stored: a success's links and next step."""
    return outcome.state == states.SUCCESS and bool(outcome.message.link or outcome.message.chain)


def _follow_up(delivery: Delivery, outcome: Outcome, ctx: ExecutionContext) -> None:
    rejects.contained(lambda: continuation.follow_up(outcome, ctx.hostname, ctx.eager), delivery, outcome.message,
                      ctx.hostname, f"sending what follows the task (it ended {outcome.state})")
