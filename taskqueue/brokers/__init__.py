"""Pick the broker for TASKQUEUE_BROKER_URL; one instance per process, rebuilt after fork."""

from __future__ import annotations

import os

from ..exceptions import ImproperlyConfigured
from .base import Broker, Delivery

_instance: tuple[str, Broker] | None = None


def get_broker() -> Broker:
    """The process's broker for the configured URL (a fresh one in a forked child)."""
    from ..conf import get_settings  # not at import: the supervisor imports brokers.leases without Django

    global _instance
    settings = get_settings()
    url = settings.BROKER_URL
    if _instance is None or _instance[0] != url:
        _instance = (url, create_broker(url, settings.KEY_PREFIX))
    return _instance[1]


def _forget_after_fork() -> None:
    global _instance
    _instance = None  # the parent's connections are not the child's to use or close


os.register_at_fork(after_in_child=_forget_after_fork)


def create_broker(url: str, prefix: str) -> Broker:
    scheme = url.split(":", 1)[0]
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisBroker

        return RedisBroker(url, prefix)
    if scheme == "django":
        from .database import DatabaseBroker

        alias = url.split("://", 1)[1].strip("/") or "default"  # django://  or  django://<db alias>
        return DatabaseBroker(alias, prefix)
    raise ImproperlyConfigured(f"Unsupported TASKQUEUE_BROKER_URL scheme {scheme!r}: use redis:// or django://")


def reset_broker() -> None:
    """Forget the cached broker (after fork or a settings change)."""
    global _instance
    if _instance is not None:
        _instance[1].close()
    _instance = None


__all__ = ["Broker", "Delivery", "get_broker", "create_broker", "reset_broker"]
