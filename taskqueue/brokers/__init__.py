"""Pick the broker for TASKQUEUE_BROKER_URL; one instance per process, rebuilt after fork."""

from __future__ import annotations

import os

from ..brokerurls import AMQP_SCHEMES, CLUSTER_SCHEME, REDIS_SCHEMES, SENTINEL_SCHEME, broker_kind
from ..exceptions import ImproperlyConfigured
from .base import Broker, Delivery, Holdings, Leases, Outgoing

_instance: tuple[str, Broker] | None = None


def get_broker() -> Broker:
    """The process's broker for the configured URL (a fresh one in a forked child)."""
    from ..conf import get_settings  # not at import: the supervisor imports brokers.leases without Django

    global _instance
    settings = get_settings()
    url = settings.BROKER_URL
    if _instance is None or _instance[0] != url:
        _instance = (url, create_broker(url, settings.KEY_PREFIX, settings.PRIORITY_AGING))
    return _instance[1]


def _forget_after_fork() -> None:
    global _instance
    _instance = None  # the parent's connections are not the child's to use or close


os.register_at_fork(after_in_child=_forget_after_fork)


def database_alias(url: str) -> str:
    """The database of a django:// URL: django:// (the default one) or django://<alias>."""
    return url.split("://", 1)[1].strip("/") or "default"


def create_broker(url: str, prefix: str, priority_aging: float = 60.0) -> Broker:
    # Each broker's module is imported only when chosen: the database one imports the models.
    kind = broker_kind(url)
    if kind == "redis" and url.startswith(CLUSTER_SCHEME + ":"):
        from .rediscluster import RedisClusterBroker

        return RedisClusterBroker(url, prefix, priority_aging)
    if kind == "redis":
        from .redis import RedisBroker

        return RedisBroker(url, prefix, priority_aging)
    if kind == "database":
        from .database import DatabaseBroker

        return DatabaseBroker(database_alias(url), prefix, priority_aging)
    if kind == "amqp":
        from .amqp import AmqpBroker

        return AmqpBroker(url, prefix, priority_aging)
    raise ImproperlyConfigured(f"Unsupported TASKQUEUE_BROKER_URL scheme {url.split(':', 1)[0]!r}: "
                               "use redis://, amqp:// or django://")


def reset_broker() -> None:
    """Forget the cached broker (after fork or a settings change)."""
    global _instance
    if _instance is not None:
        _instance[1].close()
    _instance = None


__all__ = ["AMQP_SCHEMES", "CLUSTER_SCHEME", "REDIS_SCHEMES", "SENTINEL_SCHEME", "Broker", "Delivery", "Holdings",
           "Leases", "Outgoing", "broker_kind", "create_broker", "database_alias", "get_broker", "reset_broker"]
