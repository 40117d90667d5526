"""The consumer loop, top to bottom: reserve → execute → repeat until told to stop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis
from django.db import connections
from django.db.utils import InterfaceError, OperationalError

from ..brokers import get_broker
from .connections import ConnectionKeeper
from .execute import ExecutionContext, process
from .slot import TaskSlot

logger = logging.getLogger("taskqueue.worker")

_BROKER_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)
_DB_ERRORS = (OperationalError, InterfaceError)


def consume(consumer_id: str, hostname: str, queues: list[str], slot: TaskSlot,
            should_stop: Callable[[], bool], prefetch: int = 1, max_tasks: int | None = None) -> int:
    """Run tasks until `should_stop()` or `max_tasks` ran; returns how many ran."""
    broker = get_broker()
    ctx = ExecutionContext(broker=broker, hostname=hostname, consumer_id=consumer_id,
                           on_task_start=slot.begin, on_task_end=slot.end)
    keeper = ConnectionKeeper()
    done, backoff, failed = 0, 0.1, False
    count = 1  # grows to `prefetch` while batches run through; back to 1 when a long task cuts one
    while not should_stop() and (max_tasks is None or done < max_tasks):
        try:
            if failed:  # give back whatever a failed batch left leased to us
                broker.recover(0, [consumer_id])
                failed = False
            wanted = count if max_tasks is None else min(count, max_tasks - done)
            deliveries = broker.reserve(consumer_id, queues, count=wanted, timeout=1.0)
            if deliveries:
                keeper.before_batch()
                complete = process(deliveries, ctx, should_stop)
                count = min(prefetch, count * 2) if complete else 1
                done += len(deliveries)
            backoff = 0.1
        except _BROKER_ERRORS + _DB_ERRORS as exc:
            failed = True
            logger.warning("Connection problem (%s); retrying in %.1f s", exc, backoff)
            connections.close_all()
            _sleep_unless_stopped(backoff, should_stop)
            backoff = min(backoff * 2, 2.0)
    return done


def _sleep_unless_stopped(seconds: float, should_stop: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not should_stop():
        time.sleep(0.05)
