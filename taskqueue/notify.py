"""Wake `get()` waiters when a result is stored: Redis pub/sub with the Redis broker, LISTEN/NOTIFY
with results in PostgreSQL otherwise, a doorbell (`doorbell.py`) with results in SQLite, else a
short bounded backoff.

The database stays the source of truth: a notification says "look again now". With Redis, the
notification of a finished task also carries its signed outcome (state, result, traceback) when it
is small, so the waiter needs no second read; it is sent only after the row is committed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

from .brokers import CLUSTER_SCHEME, broker_kind
from .brokers.redis import ThreadClients, connect
from .conf import get_settings
from .doorbell import Doorbell
from .pglisten import Listener

# A Redis Cluster also answers MOVED (the slot is served elsewhere now) or CLUSTERDOWN.
_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.AskError,
               redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError)
_local = threading.local()
_clients: dict[str, tuple] = {}  # broker URL -> clients of this process
os.register_at_fork(after_in_child=_clients.clear)  # a child opens its own connections


def _kind() -> str:
    kind = broker_kind(get_settings().BROKER_URL)
    if kind == "redis":
        return "redis"
    if kind in ("database", "amqp"):  # results in the database: LISTEN/NOTIFY on PostgreSQL
        from django.db import connection

        if connection.vendor == "postgresql":
            return "postgres"
        if connection.vendor == "sqlite":
            return "doorbell"
    return "poll"


def _redis() -> tuple:
    """This process's (pooled client, per-thread clients, publish script) for the broker URL; on a
    Redis Cluster, (its masters' clients by slot, None, publish script)."""
    url = get_settings().BROKER_URL
    cached = _clients.get(url)
    if cached is None:
        _clients.clear()
        if url.startswith(CLUSTER_SCHEME + ":"):
            from .brokers.rediscluster import connect_cluster

            nodes = connect_cluster(url)
            cached = _clients[url] = (nodes, None, nodes.cluster.register_script(_PUBLISH_EACH))
        else:
            pooled = connect(url)
            cached = _clients[url] = (pooled, ThreadClients(pooled), pooled.register_script(_PUBLISH_EACH))
    return cached


def _redis_client():
    """The pooled client to subscribe with. On a Redis Cluster, a PUBLISH reaches the subscribers
    of every node, so all subscribe on the master of one fixed key."""
    pooled, threads, _ = _redis()
    return pooled if threads is not None else pooled.master_of(_channel())[1]


# For each (task id, payload): publish it, and for a finished task also keep it in a short list that
# a fresh waiter blocks on (BLMOVE), so it needs no subscription and no first database read.
_PUBLISH_EACH = """
local done, outcomes, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 4, #ARGV, 3 do  -- task id, payload, "1" if the task finished
  redis.call('PUBLISH', done .. ARGV[i], ARGV[i + 1])
  if ARGV[i + 2] == '1' then
    redis.call('RPUSH', outcomes .. ARGV[i], ARGV[i + 1])
    redis.call('EXPIRE', outcomes .. ARGV[i], ttl)
  end
end
"""
OUTCOME_TTL = 10  # seconds a finished task's outcome list is kept for a waiter
FRESH = 5.0  # a get() this soon after delay() finds the list if the task already finished


def _channel(task_id: str = "") -> str:
    return f"{get_settings().KEY_PREFIX}:done:{task_id}"


def _outcome_list(task_id: str = "") -> str:
    return f"{get_settings().KEY_PREFIX}:outcome:{task_id}"


def publish(task_ids: list[str], notices: dict[str, bytes] | None = None,
            finished: set[str] | None = None) -> None:
    """Tell waiters these results changed (call after the rows are committed). `notices`: signed
    outcomes by task id, passed on to Redis waiters; `finished`: the ids whose task is done
    (None: all of them)."""
    if not task_ids:
        return
    kind = _kind()
    if kind == "redis":
        notices = notices or {}
        args = []
        for task_id in task_ids:
            done = finished is None or task_id in finished
            args += [task_id, notices.get(task_id, b"1"), "1" if done else "0"]
        _run_publish_each([_channel(), _outcome_list(), OUTCOME_TTL, *args])
    elif kind == "postgres":
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, x) FROM unnest(%s::text[]) AS x", [_pg_channel(), task_ids])
    elif kind == "doorbell":
        _results_doorbell().ring(task_ids)


def _own_client(key: str = ""):
    """This thread's client on one fixed connection (see brokers.redis.ThreadClients): on a Redis
    Cluster, to the master of `key`'s slot."""
    pooled, threads, _ = _redis()
    return threads.get() if threads is not None else pooled.master_of(key)[2].get()


def _run_publish_each(args: list) -> None:
    pooled, threads, script = _redis()
    if threads is not None:
        threads.run_script(script, args)
        return
    # A Redis Cluster: one call per task, so each touches one outcome list (one slot), sent to its
    # master; the calls for one master go in one round trip.
    head = args[:3]
    by_master: dict[ThreadClients, list] = {}
    for i in range(3, len(args), 3):
        _, _, master = pooled.master_of(_outcome_list(args[i]))
        by_master.setdefault(master, []).append((script, [*head, *args[i:i + 3]]))
    try:
        for master, calls in by_master.items():
            master.run_scripts(calls)
    except _REDIS_DOWN:
        pooled.refresh()  # a slot moved or a master went away: the next call asks the cluster again
        raise


def forget(task_ids: list[str]) -> None:
    """Finished tasks made to wait again (resumed, or requeued from the dead letters): drop the
    outcomes kept for fresh waiters, so a get() waits for the new attempt instead of finding the
    old one."""
    if not task_ids or _kind() != "redis":
        return
    keys = [_outcome_list(task_id) for task_id in task_ids]
    pooled, threads, _ = _redis()
    if threads is not None:
        threads.get().delete(*keys)
    else:  # a Redis Cluster: each list on its own slot's master
        for key in keys:
            _own_client(key).delete(key)


def awaits_outcome() -> bool:
    """Whether a fresh waiter can block on the outcome list instead of subscribing first."""
    return _kind() == "redis"


@contextmanager
def listen(task_id: str, outcome_only: bool = False) -> Iterator[Callable[[float], bytes | None]]:
    """Subscribe before reading the row, then call `wait(seconds)` to sleep until a change or timeout;
    it returns the notification's payload when one came (a signed outcome, or b"1").

    `outcome_only` (Redis): wait on the task's outcome list instead; it only wakes when the task
    finished, and finds the outcome even if it was stored just before (kept OUTCOME_TTL seconds)."""
    kind = _kind()
    if kind == "redis" and outcome_only:
        yield _outcome_waiter(task_id)
    elif kind == "redis":
        with _listen_redis(task_id) as wait:
            yield wait
    elif kind == "postgres":
        try:
            yield _pg_waiter(task_id)
        finally:
            _pg_listener().unlisten()  # a caller between two get()s reads no notifications
    elif kind == "doorbell" and _results_doorbell().listen():
        yield _doorbell_waiter(task_id)
    else:
        yield _backoff_waiter()


@contextmanager
def _listen_redis(task_id: str) -> Iterator[Callable[[float], bytes | None]]:
    channel = _channel(task_id).encode()
    subscribed = None

    def subscribe():
        nonlocal subscribed
        subscribed = _thread_pubsub(_redis_client())
        # Not waiting for the confirmation saves a round trip; a notification published in the instant
        # before Redis registers us is covered by get()'s short re-checks of the database.
        subscribed.subscribe(channel)
        return subscribed

    def wait(seconds: float) -> bytes | None:
        nonlocal subscribed
        deadline = time.monotonic() + max(0.0, seconds)
        try:
            pubsub = subscribed or subscribe()
            while True:  # bounded by the deadline; skips late messages of earlier channels
                message = pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
                if message is not None and message.get("channel") == channel:
                    return message["data"] if message.get("type") == "message" else None
                if message is None or time.monotonic() >= deadline:
                    return None
        except _REDIS_DOWN:  # a broker blip: subscribe again next time; get() reads the row meanwhile
            subscribed = None
            _drop_thread_pubsub()
            _after_outage()
            _sit_out(deadline)
            return None

    try:
        with contextlib.suppress(*_REDIS_DOWN):
            subscribe()
        yield wait
    finally:
        try:
            if subscribed is not None:
                subscribed.unsubscribe(channel)
        except Exception:  # a broken connection: start a fresh one next time
            _drop_thread_pubsub()


def _after_outage() -> None:
    """On a Redis Cluster, ask for the slot map again: the master of a key may have changed."""
    cached = _clients.get(get_settings().BROKER_URL)
    if cached is not None and cached[1] is None:
        cached[0].refresh()


def _sit_out(deadline: float) -> None:
    """Wait out part of a broker outage (at most half a second), so get() does not spin."""
    time.sleep(max(0.0, min(0.5, deadline - time.monotonic())))


def _outcome_waiter(task_id: str) -> Callable[[float], bytes | None]:
    key = _outcome_list(task_id)
    client = _own_client(key)

    def wait(seconds: float) -> bytes | None:
        # Moving the list's element onto itself leaves it there for any other waiter. get() calls
        # again after a short wait: a blocking read must end well within the socket timeout.
        deadline = time.monotonic() + seconds
        try:
            return client.blmove(key, key, max(0.001, min(seconds, 1.0)), src="RIGHT", dest="LEFT")
        except _REDIS_DOWN:  # a broker blip: get() reads the row meanwhile
            _after_outage()
            _sit_out(deadline)
            return None

    return wait


def _thread_pubsub(client):
    """One subscriber connection per thread, reused across get() calls (no connect per call)."""
    pubsub = getattr(_local, "pubsub", None)
    if pubsub is None or getattr(_local, "client", None) is not client or _local.pid != os.getpid():
        pubsub = client.pubsub(ignore_subscribe_messages=False)
        _local.pubsub, _local.client, _local.pid = pubsub, client, os.getpid()
    return pubsub


def _drop_thread_pubsub() -> None:
    pubsub = getattr(_local, "pubsub", None)
    _local.pubsub = None
    if pubsub is not None:
        try:
            pubsub.close()
        except Exception:
            pass


def _pg_channel() -> str:
    return f"{get_settings().KEY_PREFIX}_done"


def postgres_channel() -> str | None:
    """The channel a result write NOTIFYs itself, when waiters listen on PostgreSQL (else None)."""
    return _pg_channel() if _kind() == "postgres" else None


_listeners: dict[str, Listener] = {}  # channel -> its listener


def _pg_listener() -> Listener:
    channel = _pg_channel()
    listener = _listeners.get(channel)
    if listener is None:
        listener = _listeners[channel] = Listener("default", channel)
    return listener


def _pg_waiter(task_id: str) -> Callable[[float], bytes | None]:
    listener = _pg_listener()
    listener.forget_earlier()
    wanted = (task_id,)

    def wait(seconds: float) -> bytes | None:  # the signed outcome when the worker's write sent one
        carried = listener.wait_for(wanted, seconds)
        return carried.encode() if carried else None

    return wait


_doorbells: dict[str, Doorbell] = {}  # SQLite file and prefix -> its doorbell


def _results_doorbell() -> Doorbell:
    from django.db import connection

    name = f"{os.path.abspath(str(connection.settings_dict['NAME']))}:{get_settings().KEY_PREFIX}_done"
    doorbell = _doorbells.get(name)
    if doorbell is None:
        doorbell = _doorbells[name] = Doorbell(name)
    return doorbell


def _doorbell_waiter(task_id: str) -> Callable[[float], None]:
    doorbell = _results_doorbell()  # already listening: bound before the row is read
    wanted = (task_id,)

    def wait(seconds: float) -> None:  # a ring carries no outcome either: the waiter reads the row
        doorbell.wait_for(wanted, seconds)

    return wait


def close() -> None:
    """Close this thread's listening connections (before dropping a test database, say)."""
    _drop_thread_pubsub()
    for pooled, threads, *_ in _clients.values():
        (threads or pooled).close_mine()
    for listener in _listeners.values():
        listener.close()
    for doorbell in _doorbells.values():
        doorbell.close()


def _backoff_waiter() -> Callable[[float], None]:
    delay = [0.005]

    def wait(seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, delay[0])))
        delay[0] = min(delay[0] * 1.5, 0.1)

    return wait
