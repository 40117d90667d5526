"""Wake `get()` waiters when a result is stored: Redis pub/sub, else a short bounded backoff.

The database stays the source of truth: a notification only says "look again now".
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

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


@contextmanager
def listen(task_id: str) -> Iterator[Callable[[float], None]]:
    """Subscribe before reading the row, then call `wait(seconds)` to sleep until a change or timeout."""
    client = _redis_client()
    if client is None:
        yield _backoff_waiter()
        return
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    channel = _channel(task_id)
    pubsub.subscribe(channel)
    pubsub.get_message(timeout=1.0)  # the subscribe confirmation: we are listening from here on

    def wait(seconds: float) -> None:
        pubsub.get_message(timeout=max(0.0, seconds))

    try:
        yield wait
    finally:
        pubsub.close()


def _backoff_waiter() -> Callable[[float], None]:
    delay = [0.005]

    def wait(seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, delay[0])))
        delay[0] = min(delay[0] * 1.5, 0.1)

    return wait
