"""What kind of broker a TASKQUEUE_BROKER_URL names, by its scheme (below every layer: the
settings translation of Celery's `broker_url` checks it too)."""

from __future__ import annotations

SENTINEL_SCHEME = "redis+sentinel"  # the master that Redis Sentinels name (brokers/redis.py)
CLUSTER_SCHEME = "redis+cluster"  # a Redis Cluster, each queue in one hash slot (brokers/rediscluster.py)
REDIS_SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME, CLUSTER_SCHEME)
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")  # RabbitMQ (brokers/amqp.py); pyamqp:// as Celery spells it


def broker_kind(url: str) -> str | None:
    """What a TASKQUEUE_BROKER_URL names: "redis", "amqp", "database", or None (an unknown scheme)."""
    scheme = url.split(":", 1)[0]
    if scheme in REDIS_SCHEMES:
        return "redis"
    if scheme in AMQP_SCHEMES:
        return "amqp"
    return "database" if scheme == "django" else None
