"""lock_key mutexes: one holder per key value across all workers, tied to the holder's lease."""

from __future__ import annotations

from .brokers import get_broker
from .conf import get_settings


def acquire(name: str, consumer_id: str) -> bool:
    """Take the lock for `consumer_id`; False while a live consumer holds it."""
    return get_broker().lock(name, consumer_id, get_settings().VISIBILITY_TIMEOUT)


def release(name: str, consumer_id: str) -> None:
    get_broker().lock(name, consumer_id, None)
