"""The consumer loop, top to bottom: reserve → execute → repeat until told to stop."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import psutil

from .. import outbox
from ..brokers import broker_kind, get_broker
from ..conf import get_settings
from ..outages import Backoff, drop_broken_connections, is_outage
from . import ChildLimits
from .batch import process
from .connections import ConnectionKeeper
from .controls import Controls
from .execute import ExecutionContext
from .slot import TaskSlot

logger = logging.getLogger("taskqueue.worker")
RELAY_EVERY = 2.0  # seconds between looks at the outbox for messages the broker missed at commit
IDLE_WAIT = 0.5  # seconds an idle consumer waits for a message before it looks for a stop again


def consume(consumer_id: str, hostname: str, queues: list[str], slot: TaskSlot,
            should_stop: Callable[[], bool], prefetch: int = 1, limits: ChildLimits | None = None) -> int:
    """Run tasks until `should_stop()` or a limit of `limits` is reached; returns how many ran.

    Nothing that happens to one batch ends the loop. After an error, whatever the batch still
    holds goes back to its queue: uncounted after an outage (waiting for a server is not a
    failed delivery), counted otherwise, so a message that keeps breaking the loop reaches the
    redelivery limit and is dead-lettered."""
    broker = get_broker()
    ctx = ExecutionContext(broker=broker, hostname=hostname, consumer_id=consumer_id,
                           on_task_start=slot.begin, on_task_end=slot.end)
    keeper = ConnectionKeeper()
    controls = Controls(consumer_id, queues)
    backoff = Backoff()
    done, give_back = 0, None  # give_back: None, or whether the give-back counts as a redelivery
    count = 1  # grows to `prefetch` while batches run through; back to 1 when a long task cuts one
    settings = get_settings()
    relays = settings.OUTBOX and broker_kind(settings.BROKER_URL) != "database"
    next_relay = time.monotonic()
    limits = limits or ChildLimits()
    max_tasks = limits.max_tasks
    while not should_stop() and (max_tasks is None or done < max_tasks) and not over_memory(limits):
        try:
            if give_back is not None:
                broker.leases(requeue=[consumer_id], redelivered=give_back)
                give_back = None
            if relays and time.monotonic() >= next_relay:
                next_relay = time.monotonic() + RELAY_EVERY
                outbox.relay(broker)
            wanted = count if max_tasks is None else min(count, max_tasks - done)
            active = controls.active_queues()  # paused queues are left alone (read every few seconds)
            deliveries = broker.reserve(consumer_id, active, count=wanted, timeout=IDLE_WAIT)
            if deliveries:
                keeper.before_batch()
                # with --max-tasks-per-child the count must stay exact: no taking more in a batch
                take_more = None if max_tasks is not None else (
                    lambda: broker.reserve(consumer_id, active, count=1, timeout=0))  # noqa: B023  (used at once)
                complete = process(deliveries, ctx, should_stop, take_more)
                count = min(prefetch, count * 2) if complete else 1
                done += len(deliveries)
            backoff.reset()
        except Exception as exc:
            outage = is_outage(exc)
            give_back = not outage if give_back is None else give_back
            if outage:
                logger.warning("Connection problem (%s); retrying in %.1f s", exc, backoff.delay)
            else:
                logger.exception("The consumer loop failed; what it held goes back to the queue")
            drop_broken_connections()
            backoff.wait(should_stop)
            count = 1
    return done


_process: psutil.Process | None = None


def _this_process() -> psutil.Process:
    global _process
    if _process is None or _process.pid != os.getpid():  # a consumer is forked from the supervisor
        _process = psutil.Process()
    return _process


def over_memory(limits: ChildLimits) -> bool:
    """Whether this process's resident memory passed the limit (checked between batches)."""
    if limits.max_memory_kib is None:
        return False
    resident_kib = _this_process().memory_info().rss // 1024
    if resident_kib <= limits.max_memory_kib:
        return False
    logger.warning("Consumer uses %d KiB, over --max-memory-per-child (%d KiB): replacing it", resident_kib,
                   limits.max_memory_kib)
    return True
