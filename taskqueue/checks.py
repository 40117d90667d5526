"""System checks: catch a wrong taskqueue configuration at `manage.py check` time, not at run time."""

from __future__ import annotations

import redis
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import connections

from .brokers import CLUSTER_SCHEME, broker_kind, database_alias
from .conf import get_settings


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs) -> list:
    settings = get_settings()
    problems: list[CheckMessage] = []
    kind = broker_kind(settings.BROKER_URL)
    if kind is None:
        problems.append(Error(f"TASKQUEUE_BROKER_URL has an unknown scheme {settings.BROKER_URL.split(':', 1)[0]!r}.",
                              hint="Use django:// (the database), redis://, rediss://, unix://, redis+sentinel://, "
                                   "redis+cluster:// or amqp://.",
                              id="taskqueue.E002"))
    elif kind == "database":
        alias = database_alias(settings.BROKER_URL)
        if alias not in connections:
            problems.append(Error(f"TASKQUEUE_BROKER_URL names the database {alias!r}, which is not in DATABASES.",
                                  id="taskqueue.E001"))
        elif connections[alias].vendor == "sqlite" and \
                connections[alias].settings_dict.get("OPTIONS", {}).get("transaction_mode") != "IMMEDIATE":
            problems.append(Warning(
                "The database broker on SQLite needs IMMEDIATE transactions when several processes share the file.",
                hint='Add "transaction_mode": "IMMEDIATE" (and a "timeout") to the database OPTIONS.',
                id="taskqueue.W002"))
    if settings.VISIBILITY_TIMEOUT <= settings.heartbeat_interval:
        problems.append(Error("TASKQUEUE_VISIBILITY_TIMEOUT must be longer than TASKQUEUE_HEARTBEAT_INTERVAL.",
                              hint="Leave HEARTBEAT_INTERVAL unset: it defaults to a fifth of the timeout.",
                              id="taskqueue.E003"))
    if settings.TASK_ALWAYS_EAGER:
        problems.append(Warning("TASKQUEUE_TASK_ALWAYS_EAGER is on: tasks run in the caller, not in workers.",
                                id="taskqueue.W001"))
    return problems


@register(Tags.compatibility)
def check_redis_durability(app_configs=None, **kwargs) -> list:
    """Warn when the Redis broker keeps no append-only file: a Redis restart then loses every
    queued and running message (RDB snapshots keep only what was there at the last snapshot)."""
    url = get_settings().BROKER_URL
    if broker_kind(url) != "redis":
        return []
    try:
        aof = _every_master_keeps_an_aof(url)
    except redis.RedisError:
        return []  # unreachable now: the worker reports that when it starts
    if aof:
        return []
    return [Warning("The Redis broker runs without AOF persistence: a Redis restart loses every message "
                    "queued, delayed or running, with no error anywhere.",
                    hint='Run Redis with "appendonly yes" (see docs/reliability.md).', id="taskqueue.W003")]


def _every_master_keeps_an_aof(url: str) -> bool:
    if url.startswith(CLUSTER_SCHEME + ":"):
        from .brokers.rediscluster import connect_cluster

        nodes = connect_cluster(url, timeout=0.5, connect_timeout=0.5)
        try:
            return all(master.info("persistence").get("aof_enabled") for master in nodes.masters())
        finally:
            nodes.close()
    from .brokers.redis import connect  # redis-py's URL parser knows no redis+sentinel://

    client = connect(url, timeout=0.5, connect_timeout=0.5)
    try:
        return bool(client.info("persistence").get("aof_enabled"))
    finally:
        client.close()
