"""Telling an outage (a server that is down, restarting or unreachable) from a bad message, and
waiting one out: a worker holds what it has through an outage instead of dying or re-running work."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import redis
from django.db import connections
from django.db.utils import DatabaseError, InterfaceError, OperationalError

logger = logging.getLogger("taskqueue.worker")

# Not every OSError: a task's FileNotFoundError is its own failure, not an outage.
_BROKER_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError)
# SQLSTATE classes of a lost or refused connection: 08 connection exception, 57P admin shutdown,
# crash shutdown, cannot connect now (starting up or shutting down).
_LOST_CONNECTION_STATES = ("08", "57P")

HOLD_LIMIT = 600.0  # seconds a worker holds finished outcomes through an outage before giving up


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` means a database or broker is unreachable (retry later), not a bad message."""
    if isinstance(exc, (OperationalError, InterfaceError) + _BROKER_ERRORS + _amqp_errors()):
        return True
    if isinstance(exc, OSError) and _raised_by_amqp_socket(exc):
        return True
    if isinstance(exc, DatabaseError):  # e.g. a dropped connection seen by a prepared statement
        cause = exc.__cause__
        sqlstate = getattr(cause, "sqlstate", None) or ""
        return sqlstate.startswith(_LOST_CONNECTION_STATES) or _connection_broken()
    return False


def _amqp_errors() -> tuple[type[BaseException], ...]:
    """py-amqp's connection errors, once something imported it (a worker on Redis never loads it:
    about 2 MB a process)."""
    amqp = sys.modules.get("amqp")
    return (amqp.exceptions.ConnectionError, amqp.exceptions.RecoverableConnectionError) if amqp else ()


def _raised_by_amqp_socket(exc: OSError) -> bool:
    """py-amqp reports a connection the server closed as a plain OSError ("Server unexpectedly
    closed connection"), raised in its socket transport: that is a lost connection too."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and frame.tb_frame.f_globals.get("__name__") == "amqp.transport"


def lost_database(exc: BaseException) -> bool:
    """Whether a task failed only because the worker's database went away (not, say, a statement
    timeout, which leaves the connection usable): the task is then run again, not failed."""
    return isinstance(exc, (OperationalError, InterfaceError)) and _connection_broken()


def _connection_broken() -> bool:
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.is_usable():
            return True
    return False


def drop_broken_connections() -> None:
    """Close this thread's database connections that no longer work, so the next query opens a
    new one (Django itself only does this between requests)."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is None or (conn.is_usable() and not conn.in_atomic_block):
            continue
        try:
            conn.close()
        except Exception:  # closing a connection whose server is gone can raise; it is gone either way
            conn.connection = None


class Backoff:
    """Waits that double from `first` up to `cap` seconds; `reset()` after a success."""

    def __init__(self, first: float = 0.1, cap: float = 2.0):
        self.first, self.cap = first, cap
        self.delay = first

    def reset(self) -> None:
        self.delay = self.first

    def wait(self, should_stop: Callable[[], bool]) -> float:
        """Sleep the current delay (cut short by `should_stop`), then double it; returns the delay."""
        waited = self.step()
        deadline = time.monotonic() + waited
        while time.monotonic() < deadline and not should_stop():
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return waited

    def step(self) -> float:
        """The current delay, doubled for next time (for a caller that waits its own way)."""
        waited = self.delay
        self.delay = min(self.delay * 2, self.cap)
        return waited


def through_outages[T](action: Callable[[], T], what: str, should_stop: Callable[[], bool],
                    limit: float = HOLD_LIMIT) -> T:
    """Run `action` until it succeeds, waiting out outages with backoff. Other errors, an outage
    longer than `limit` seconds, or an outage when `should_stop()` are raised to the caller."""
    backoff = Backoff()
    give_up_at = time.monotonic() + limit
    while True:  # ends on success, on a non-outage error, on stop, or at `give_up_at`
        try:
            return action()
        except Exception as exc:
            if not is_outage(exc) or should_stop() or time.monotonic() > give_up_at:
                raise
            logger.warning("%s: connection problem (%s); holding and retrying in %.1f s", what, exc,
                           backoff.delay)
            drop_broken_connections()
            backoff.wait(should_stop)
