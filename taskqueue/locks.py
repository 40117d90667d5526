"""lock_key mutexes: one holder per key value across all workers, tied to the holder's lease."""

from __future__ import annotations

from .brokers import get_broker
from .conf import get_settings
from .exceptions import ImproperlyConfigured


def _lock_broker():
    broker = get_broker()
    if not hasattr(broker, "acquire_lock"):
        raise ImproperlyConfigured(f"lock_key is not supported by {type(broker).__name__}")
    return broker


def acquire(name: str, consumer_id: str) -> bool:
    """Take the lock for `consumer_id`; False while a live consumer holds it."""
    return _lock_broker().acquire_lock(name, consumer_id, get_settings().VISIBILITY_TIMEOUT)


def release(name: str, consumer_id: str) -> None:
    _lock_broker().release_lock(name, consumer_id)
