"""The asyncio pool (`runworker -P asyncio -c N`): one consumer process whose event loop runs up
to N tasks at once.

An `async def` task's coroutine is awaited on the loop, so a hundred tasks waiting on the network
take one process, not a hundred. Whatever blocks runs beside the loop on a few threads: each
task's bookkeeping (`execute.begin` and `execute.end`: the checks, lock_key, STARTED, signals,
the outcome), storing outcomes and acking (`batch.Pending`, as in the other pools), and reserving
and the revoke checks on a thread of their own (an outage may hold all the others). A sync task
has no place on the loop: it runs to its end on one of those threads.

The process runs many tasks, so it is never killed for one: the soft and hard time limits and a
revoke with terminate cancel the task's coroutine (it sees CancelledError where it awaits). A
coroutine that blocks without awaiting holds up the whole loop and cannot be stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from .. import outbox, store
from ..brokers import Delivery, broker_kind, get_broker
from ..codecs import Outcome
from ..conf import get_settings
from ..exceptions import TaskRevokedError
from ..outages import Backoff, drop_broken_connections, is_outage
from ..request import Request, request_context
from . import ChildLimits, aio, continuation, execute, rejects
from .batch import Pending
from .consumer import IDLE_WAIT, RELAY_EVERY, over_memory
from .controls import Controls
from .execute import ExecutionContext

logger = logging.getLogger("taskqueue.worker")
THREADS = 4  # the blocking work beside the loop: bookkeeping, storing, sync tasks (reserving has its own)
REVOCATION_CHECK = 0.5  # seconds between asking the broker whether a running task was revoked with terminate


def consume_async(consumer_id: str, hostname: str, queues: list[str], should_stop: Callable[[], bool],
                  capacity: int, limits: ChildLimits | None = None) -> int:
    """Run up to `capacity` tasks at once until `should_stop()` or a limit; returns how many ran."""
    consumer = AsyncConsumer(consumer_id, hostname, queues, should_stop, capacity, limits or ChildLimits())
    try:
        return aio.loop().run_until_complete(consumer.run())
    finally:
        consumer.threads.shutdown(wait=True)
        consumer.reserver.shutdown(wait=True)


class AsyncConsumer:
    def __init__(self, consumer_id: str, hostname: str, queues: list[str], should_stop: Callable[[], bool],
                 capacity: int, limits: ChildLimits):
        self.broker = get_broker()
        self.ctx = ExecutionContext(broker=self.broker, hostname=hostname, consumer_id=consumer_id,
                                    should_stop=should_stop)
        self.consumer_id, self.queues, self.capacity, self.limits = consumer_id, queues, capacity, limits
        self.should_stop = should_stop
        self.threads = ThreadPoolExecutor(THREADS, thread_name_prefix="taskqueue-aio")
        # its own thread: taking messages and looking for revokes go on while an outage holds the others
        self.reserver = ThreadPoolExecutor(1, thread_name_prefix="taskqueue-aio-reserve")
        self.pending = Pending(self.ctx)
        self.handlers: set[asyncio.Task] = set()
        self.running: dict[str, asyncio.Task] = {}  # task id -> its coroutine's asyncio task
        self.terminated: set[str] = set()
        self.controls = Controls(consumer_id, queues)
        settings = get_settings()
        self.relays = settings.OUTBOX and broker_kind(settings.BROKER_URL) != "database"
        self.next_relay = time.monotonic()
        self._flusher: asyncio.Task | None = None
        self.backoff = Backoff()
        self.outage: Exception | None = None  # met by a task's handler: reserving waits, backing off
        self.unknown_holdings = False  # a reserve failed: its lost reply may have leased messages to us

    async def blocking(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`function(*args, **kwargs)` on one of the threads beside the loop."""
        return await _on(self.threads, function, args, kwargs)

    async def on_reserver(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`function(*args, **kwargs)` on the thread that reserves."""
        return await _on(self.reserver, function, args, kwargs)

    async def run(self) -> int:
        done = 0
        watcher = asyncio.create_task(self._watch_revocations())
        max_tasks = self.limits.max_tasks
        while not self.should_stop() and (max_tasks is None or done < max_tasks) and not over_memory(self.limits):
            free = self.capacity - len(self.handlers)
            if max_tasks is not None:
                free = min(free, max_tasks - done)
            if free <= 0:
                await asyncio.wait(self.handlers, timeout=IDLE_WAIT, return_when=asyncio.FIRST_COMPLETED)
                continue
            if self.outage is not None:  # what it took went back to its queue: wait before taking more
                logger.warning("Connection problem (%s); retrying in %.1f s", self.outage, self.backoff.delay)
                self.outage = None
                await asyncio.sleep(self.backoff.step())  # on the loop: the threads may all be held by the outage
                continue
            if self.unknown_holdings and not await self._give_back_holdings():
                continue
            try:
                deliveries = await self.on_reserver(self._reserve, free)
            except Exception as exc:
                if is_outage(exc):
                    self.outage = exc
                    self.unknown_holdings = True
                else:
                    logger.exception("Reserving failed")
                    await asyncio.sleep(self.backoff.step())
                continue
            for delivery in deliveries:
                handler = asyncio.create_task(self._handle(delivery))
                self.handlers.add(handler)
                handler.add_done_callback(self.handlers.discard)
            done += len(deliveries)
        if self.handlers:  # a warm shutdown, or a limit: the running tasks finish first
            await asyncio.wait(self.handlers)
        watcher.cancel()
        if self._flusher is not None:
            await self._flusher
        return done

    async def _give_back_holdings(self) -> bool:
        """Once no task runs and every outcome is stored, give back all this consumer holds (what a
        lost reserve reply leased to it); False while that has to wait."""
        if self.handlers or self.pending:
            if self.pending and (self._flusher is None or self._flusher.done()):
                self._flusher = asyncio.create_task(self._flush())
            await asyncio.wait([*self.handlers, *([self._flusher] if self._flusher else [])], timeout=IDLE_WAIT,
                               return_when=asyncio.FIRST_COMPLETED)
            return False
        try:
            await self.on_reserver(self.broker.leases, requeue=[self.consumer_id], redelivered=False)
        except Exception as exc:  # backed off as an outage, whatever it was
            if not is_outage(exc):
                logger.exception("Giving back what a failed reserve may have taken failed")
            self.outage = exc
            return False
        self.unknown_holdings = False
        return True

    def _reserve(self, count: int) -> list[Delivery]:
        if self.relays and time.monotonic() >= self.next_relay:
            self.next_relay = time.monotonic() + RELAY_EVERY
            outbox.relay(self.broker)
        active = self.controls.active_queues()  # paused queues are left alone (read every few seconds)
        return self.broker.reserve(self.consumer_id, active, count=count, timeout=IDLE_WAIT)

    async def _handle(self, delivery: Delivery) -> None:
        """One message to its outcome, added to the outcomes the flusher stores and acks."""
        try:
            finished = await self._run(delivery)
        except Exception as exc:  # an outage (or a bug): this message goes back, the others go on
            if is_outage(exc):
                self.outage = exc
            else:
                logger.exception("Handling %s failed; it goes back to its queue", delivery.key)
            try:
                await self.blocking(self.broker.release, [delivery])
            except Exception:  # the lease runs out and the supervisor's leases requeue it
                logger.warning("Could not give back %s", delivery.key)
            return
        self.backoff.reset()
        if finished:
            self.pending.add(*finished)
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush())

    async def _run(self, delivery: Delivery) -> tuple[Delivery] | tuple[Delivery, Outcome] | None:
        hostname = self.ctx.hostname
        message = await self.blocking(rejects.decode_or_dead_letter, delivery, hostname)
        if message is None:
            return (delivery,)  # dead-lettered: acked with no outcome
        known = None
        if delivery.redeliveries or message.retries or delivery.revoked:
            known = (await self.blocking(store.known_states, [message.id])).get(message.id)
        if execute.already_handled(message, known, delivery.revoked):
            await self.blocking(rejects.contained, lambda: continuation.resume(message, hostname), delivery, message,
                                hostname, "resending what follows the finished task")
            return (delivery,)
        try:
            begun = await self.blocking(execute.begin, message, self.ctx, delivery)
        except Exception as exc:
            if is_outage(exc):
                raise
            logger.exception("Handling %s[%s] failed", message.task, message.id)  # a hook or signal receiver
            begun = execute.failure(message, exc, hostname, None)
        if isinstance(begun, execute.Awaiting):
            retval, error = await self._await(begun)
            begun = await self.blocking(execute.end, begun, self.ctx, retval, error)
        return None if begun is None else (delivery, begun)

    async def _await(self, begun: execute.Awaiting) -> tuple[Any, BaseException | None]:
        """The coroutine's value or what it raised, under its time limits; cancelled by a revoke
        with terminate (then a TaskRevokedError)."""
        message = begun.message
        with request_context(Request.from_message(message, self.ctx.hostname)):  # copied into the task
            task = asyncio.create_task(aio.limited(begun.coroutine, message.soft_time_limit, message.time_limit))
        self.running[message.id] = task
        try:
            return await task, None
        except asyncio.CancelledError:
            if message.id not in self.terminated:
                raise  # the loop itself is being cancelled
            return None, TaskRevokedError("revoked with terminate: its coroutine was cancelled")
        except BaseException as exc:  # noqa: B036 - as in execute: whatever the task raises fails it
            return None, exc
        finally:
            self.running.pop(message.id, None)
            self.terminated.discard(message.id)

    async def _flush(self) -> None:
        """Store what finished, send what follows, ack; again while more finished meanwhile."""
        while self.pending:
            try:
                await self.blocking(self.pending.flush)
            except Exception:  # held through outages up to a limit: the leases requeue what stays unacked
                logger.exception("Storing outcomes failed")
                return

    async def _watch_revocations(self) -> None:
        while not self.should_stop():
            await asyncio.sleep(REVOCATION_CHECK)
            if not self.running:
                continue
            try:
                leases = await self.on_reserver(self.broker.leases, running=list(self.running))
            except Exception as exc:
                logger.warning("Asking for revoked tasks failed: %s", exc)
                continue
            for task_id, signal_name in leases.terminations.items():
                task = self.running.get(task_id)
                if task is None or task_id in self.terminated:
                    continue
                # any signal cancels it here: the process runs other tasks
                logger.warning("Task %s revoked with terminate (%s): cancelling it", task_id, signal_name)
                self.terminated.add(task_id)
                task.cancel()


async def _on(executor: ThreadPoolExecutor, function: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    return await asyncio.get_running_loop().run_in_executor(executor, partial(_on_thread, function, args, kwargs))


def _on_thread(function: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    try:
        return function(*args, **kwargs)
    except Exception as exc:
        if is_outage(exc):  # connections are per thread: this one's must go before its next use
            drop_broken_connections()
        raise
