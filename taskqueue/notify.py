"""Wake `get()` waiters when a result is stored: Redis pub/sub, else a short bounded backoff.

The database stays the source of truth: a notification only says "look again now".
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .conf import get_settings

_client_cache: dict[int, object] = {}


def _redis_client():
    settings = get_settings()
    if not settings.BROKER_URL.startswith(("redis:", "rediss:", "unix:")):
        return None
    cached = _client_cache.get(os.getpid())
    if cached is None or cached[0] != settings.BROKER_URL:
        from .brokers.redis import connect

        _client_cache.clear()
        cached = (settings.BROKER_URL, connect(settings.BROKER_URL))
        _client_cache[os.getpid()] = cached
    return cached[1]


def _channel(task_id: str) -> str:
    return f"{get_settings().KEY_PREFIX}:done:{task_id}"


def publish(task_ids: list[str]) -> None:
    """Tell waiters these results changed (call after the rows are committed)."""
    client = _redis_client()
    if client is None or not task_ids:
        return
    with client.pipeline(transaction=False) as pipe:
        for task_id in task_ids:
            pipe.publish(_channel(task_id), b"1")
        pipe.execute()


_listeners = threading.local()


@contextmanager
def listen(task_id: str) -> Iterator[Callable[[float], None]]:
    """Subscribe before reading the row, then call `wait(seconds)` to sleep until a change or timeout."""
    client = _redis_client()
    if client is None:
        yield _backoff_waiter()
        return
    pubsub = _thread_pubsub(client)
    channel = _channel(task_id).encode()
    # Not waiting for the confirmation saves a round trip; a notification published in the instant
    # before Redis registers us is covered by get()'s short re-checks of the database.
    pubsub.subscribe(channel)

    def wait(seconds: float) -> None:
        deadline = time.monotonic() + max(0.0, seconds)
        while True:  # bounded by the deadline; skips late messages of earlier channels
            message = pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if message is None or message.get("channel") == channel or time.monotonic() >= deadline:
                return

    try:
        yield wait
    finally:
        try:
            pubsub.unsubscribe(channel)
        except Exception:  # a broken connection: start a fresh one next time
            _drop_thread_pubsub()


def _thread_pubsub(client):
    """One subscriber connection per thread, reused across get() calls (no connect per call)."""
    pubsub = getattr(_listeners, "pubsub", None)
    if pubsub is None or getattr(_listeners, "client", None) is not client or _listeners.pid != os.getpid():
        pubsub = client.pubsub(ignore_subscribe_messages=False)
        _listeners.pubsub, _listeners.client, _listeners.pid = pubsub, client, os.getpid()
    return pubsub


def _drop_thread_pubsub() -> None:
    pubsub = getattr(_listeners, "pubsub", None)
    _listeners.pubsub = None
    if pubsub is not None:
        try:
            pubsub.close()
        except Exception:
            pass


def _backoff_waiter() -> Callable[[float], None]:
    delay = [0.005]

    def wait(seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, delay[0])))
        delay[0] = min(delay[0] * 1.5, 0.1)

    return wait
