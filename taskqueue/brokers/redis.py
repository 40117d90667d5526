"""Redis broker: ready lists, a delayed sorted set and per-consumer leases (key schema in keys.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry
from redis.sentinel import Sentinel

from ..conf import get_settings
from . import SENTINEL_SCHEME
from .base import Broker, Delivery, Holdings, Leases, Outgoing
from .keys import RANK_EPOCH, key, loading_on_noscript, script
from .leases import cancelled_keys, leases_args, needs_script, terminations_from

if TYPE_CHECKING:
    from redis.connection import Connection

ANNOUNCE_EVERY = 60.0  # seconds; `inspect()` lists a queue again within this long after a Redis flush


def connect(url: str, timeout: float | None = None, connect_timeout: float = 2) -> redis.Redis:
    """A client that retries a dropped connection a few times before raising, and gives up on a
    server that accepts but does not answer after `timeout` seconds (TASKQUEUE_BROKER_TIMEOUT):
    no retry then, a server that hangs once will hang again."""
    options: dict[str, Any] = dict(
        socket_connect_timeout=connect_timeout, socket_keepalive=True, health_check_interval=30,
        socket_timeout=get_settings().BROKER_TIMEOUT if timeout is None else timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3, supported_errors=(redis.ConnectionError,)),
    )
    url = _without_our_options(url)
    if urlsplit(url).scheme == SENTINEL_SCHEME:
        return _sentinel_master(url, options)
    return redis.Redis.from_url(url, **options)


class ReplicationError(redis.ConnectionError):
    """Fewer replicas than TASKQUEUE_BROKER_URL's `wait_replicas` confirmed a publish in time: the
    message may be lost if the master fails now, so the send fails as if the broker were down."""


def wait_replicas(url: str) -> int:
    """How many replicas must have a published message before `publish` returns (the URL's
    `?wait_replicas=N`; 0 by default: Redis replicates in the background)."""
    return int(parse_qs(urlsplit(url).query).get("wait_replicas", ["0"])[0])


def _without_our_options(url: str) -> str:
    """The URL without the query options redis-py does not know (`wait_replicas`)."""
    parts = urlsplit(url)
    if "wait_replicas" not in parts.query:
        return url
    query = urlencode([(name, value) for name, value in parse_qsl(parts.query) if name != "wait_replicas"])
    return url.split("?", 1)[0] + (f"?{query}" if query else "")


def _sentinel_master(url: str, options: dict[str, Any]) -> redis.Redis:
    """`redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db][?sentinel_password=…]`:
    the master the Sentinels name for `service`. Its connections ask them again whenever one
    breaks or finds the old master demoted, so a failover is followed without a restart (the
    commands in flight then are retried, as for any dropped connection)."""
    parts = urlsplit(url)
    hosts = []
    for address in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        hosts.append((host or "127.0.0.1", int(port or 26379)))
    path = [part for part in parts.path.split("/") if part]
    if not path:
        raise ValueError(f"{url!r} names no Sentinel service: redis+sentinel://host:port/<service>[/db]")
    query = parse_qs(parts.query)
    sentinels = Sentinel(hosts, sentinel_kwargs={
        "socket_connect_timeout": options["socket_connect_timeout"], "socket_timeout": options["socket_timeout"],
        "password": query.get("sentinel_password", [None])[0]})
    return sentinels.master_for(path[0], db=int(path[1]) if len(path) > 1 else 0,
                                username=unquote(parts.username) if parts.username else None,
                                password=unquote(parts.password) if parts.password else None, **options)


class ThreadClients:
    """One client per thread, each on a fixed connection of `pooled`'s pool: a pooled client checks
    a connection out and probes its socket on every command, which costs as much as the round trip."""

    def __init__(self, pooled: redis.Redis):
        self.pooled = pooled
        self._local = threading.local()

    def get(self) -> redis.Redis:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = redis.Redis(connection_pool=self.pooled.connection_pool,
                                                      single_connection_client=True)
        return client

    def close_mine(self) -> None:
        """Give this thread's connection back to the pool."""
        client = getattr(self._local, "client", None)
        if client is not None:
            self._local.client = None
            client.close()

    def run_script(self, script: Script, args: list) -> Any:
        return self.run_scripts([(script, args)])[0]

    def run_scripts(self, calls: list[tuple[Script, list]], before: tuple = (), after: tuple = (),
                    once: bool = False) -> list:
        """Script calls by EVALSHA in one round trip on this thread's connection, after the
        commands `before` (a BLPOP, say) and before those `after` (a WAIT); `once`: not sent again
        after a dropped connection (see `pipelined`). Not redis-py's Script objects in a pipeline:
        those ask SCRIPT EXISTS first, a second round trip on every call. If Redis lost the scripts
        (restarted, or its script cache flushed), they are loaded and the calls sent again, without
        `before`, which ran (its replies are then None)."""
        evals = [("EVALSHA", loaded.sha, 0, *args) for loaded, args in calls]

        def send(first: bool) -> list:
            if first:
                return self.pipelined([*before, *evals, *after], once)
            return [None] * len(before) + self.pipelined([*evals, *after], once)

        def load() -> None:
            for loaded in {loaded.sha: loaded for loaded, _ in calls}.values():
                self.get().script_load(loaded.script)

        return loading_on_noscript(send, load, lambda exc: isinstance(exc, redis.exceptions.NoScriptError))

    def pipelined(self, commands: list[tuple], once: bool = False) -> list:
        """Commands in one round trip on this thread's connection, retried as redis-py retries
        (but with `once`, for commands not safe to repeat: a dropped connection is raised, as Redis
        may have run them without the reply reaching us). Not redis-py's pipeline (it checks a
        connection out of the pool, probing its socket) nor `client.execute_command` (its lock and
        reply-callback lookup cost a tenth of a local round trip). Replies come back in order; an
        error reply is raised once all are read, so the connection stays in step."""
        conn: Connection = self.get().connection  # type: ignore[assignment]  # a single-connection client's

        def send_and_read() -> list:
            conn.send_packed_command(conn.pack_commands(commands))
            replies = []
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except redis.exceptions.ResponseError as exc:
                    replies.append(exc)
            return replies

        if once:
            try:
                replies = send_and_read()
            except redis.ConnectionError:
                _reconnect(conn)
                raise
        else:
            replies = conn.retry.call_with_retry(send_and_read, lambda _error: _reconnect(conn))
        for reply in replies:
            if isinstance(reply, redis.exceptions.ResponseError):
                raise reply
        return replies


def _reconnect(conn: Connection) -> None:
    """Before a retry: a new socket by the connection's own `connect`, which for a Sentinel-managed
    one asks the Sentinels for the master first (sending on a closed connection reconnects to the
    address it had: a demoted master, after a failover)."""
    conn.disconnect()
    try:
        conn.connect()
    except redis.ConnectionError:
        pass  # the retry's send tries again


class RedisBroker(Broker):
    """Queues in Redis; delays stay in Redis until due, never in worker memory."""

    def __init__(self, url: str, prefix: str = "taskqueue", priority_aging: float = 60.0, *,
                 client: redis.Redis | None = None, threads: ThreadClients | None = None):
        """`client` and `threads`: a connection to share instead of one of its own (the Redis
        Cluster broker runs one of these per queue on the node that holds the queue's keys)."""
        self.url = url
        self.prefix = prefix
        self.priority_aging = priority_aging
        self.client = connect(url) if client is None else client
        self.wait_replicas = wait_replicas(url)
        self._wait_ms = max(1, int(get_settings().BROKER_TIMEOUT * 500))  # half: the socket timeout stays the later
        self._threads = ThreadClients(self.client) if threads is None else threads
        self._announced: dict[str, float] = {}  # queue -> when this process last added it to {p}:queues
        # An idle reserve blocks in slices of this, well under the socket timeout.
        self._block_limit = min(1.0, (self.client.get_connection_kwargs().get("socket_timeout") or 2.0) / 2)
        self._scripts = {name: self.client.register_script(script(name))
                         for name in ("publish", "reserve", "send_and_take", "ack", "release", "leases", "lock")}
        self._held = threading.local()  # .calls: publishes waiting for this thread's next reserve

    def _run(self, name: str, args: list) -> Any:
        return self._threads.run_script(self._scripts[name], args)

    def _check_queue(self, queue: str) -> None:
        if not queue or "\n" in queue:
            raise ValueError(f"invalid queue name {queue!r}")

    def publish(self, messages: Sequence[Outgoing], *, remember: float | None = None) -> None:
        publish = self._scripts["publish"]
        calls = [(publish, self._publish_args(message, remember)) for message in messages]
        held = getattr(self._held, "calls", None)
        if held is not None:  # sent by the next reserve (see sends_with_next_reserve)
            held += calls
            return
        if not self.wait_replicas:
            self._threads.run_scripts(calls)
            return
        # in the same round trip: returns once that many replicas have the messages, or after the timeout
        confirmed = self._threads.run_scripts(calls, after=(("WAIT", self.wait_replicas, self._wait_ms),))[-1]
        if confirmed < self.wait_replicas:
            raise ReplicationError(f"{confirmed} of the {self.wait_replicas} replicas asked for (wait_replicas in "
                                   f"TASKQUEUE_BROKER_URL) confirmed a publish within {self._wait_ms} ms")

    @contextmanager
    def sends_with_next_reserve(self) -> Iterator[None]:
        if self.wait_replicas:  # a publish returns only once its replicas confirmed it
            yield
            return
        held: list[tuple[Script, list]] = []
        self._held.calls = held
        try:
            yield
        finally:
            self._held.calls = None
        if held:  # no reserve came to carry them
            self._threads.run_scripts(held)

    def _publish_args(self, message: Outgoing, remember: float | None) -> list:
        queue = message.queue
        announced = self._announced.get(queue)
        now = time.monotonic()
        if announced is None or now - announced > ANNOUNCE_EVERY:
            self._check_queue(queue)
            self._announced[queue] = now
            announce = "1"
        else:
            announce = ""
        offset = min(max(message.priority, 0), 9) * self.priority_aging
        ready_at = time.time() if message.eta is None else message.eta
        return [self.prefix, queue, message.key, message.body, "" if message.eta is None else repr(message.eta),
                announce, str(int(remember * 1000)) if remember else "", repr(ready_at - RANK_EPOCH - offset)]

    def reserve(self, consumer_id: str, queues: list[str], *, count: int = 1,
                timeout: float = 1.0) -> list[Delivery]:
        if not queues:
            time.sleep(max(0.0, timeout))
            return []
        deliveries, next_eta = self._take(consumer_id, queues, count)
        if deliveries or timeout <= 0:
            return deliveries
        wait = timeout if next_eta is None else max(0.0, min(timeout, next_eta - time.time()))
        deadline = time.monotonic() + wait
        # Sleep until a publish pushes a wake token (or the next delayed message is due). The reserve
        # (of one message: see Broker.reserve) is pipelined behind the BLPOP: Redis runs it the moment
        # the BLPOP returns, in one round trip. Each BLPOP blocks well under the socket timeout.
        while True:  # bounded by `deadline`
            deliveries = self.take_when_woken(consumer_id, queues, max(0.001, min(deadline - time.monotonic(),
                                                                                   self._block_limit)))
            if deliveries or time.monotonic() >= deadline:
                return deliveries

    def take_when_woken(self, consumer_id: str, queues: list[str], block: float) -> list[Delivery]:
        """Wait up to `block` s for a wake token of these queues, then reserve one message."""
        wake_keys = [key(self.prefix, "wake", q) for q in queues]
        reply = self._threads.run_scripts([(self._scripts["reserve"], [self.prefix, consumer_id, 1, *queues])],
                                          before=(("BLPOP", *wake_keys, block),), once=True)[1]
        return self._parse(consumer_id, reply)[0]

    def _take(self, consumer_id: str, queues: list[str], count: int) -> tuple[list[Delivery], float | None]:
        call = (self._scripts["reserve"], [self.prefix, consumer_id, count, *queues])
        held = getattr(self._held, "calls", None)
        if held:  # the publishes first, in the same script (a reply lost: the caller sends them again)
            sent = [arg for _, args in held for arg in args[1:]]  # each publish's arguments after the prefix
            call = (self._scripts["send_and_take"], [self.prefix, len(held), *sent, consumer_id, count, *queues])
            held.clear()
        # once: a reserve Redis ran whose reply was lost must not be followed by a second one (see Broker.reserve)
        reply = self._threads.run_scripts([call], once=True)[0]
        return self._parse(consumer_id, reply)

    @staticmethod
    def _parse(consumer_id: str, reply: list) -> tuple[list[Delivery], float | None]:
        next_eta = float(reply[0]) if reply[0] else None
        deliveries = []
        for i in range(1, len(reply), 4):
            revoked = reply[i + 2] == b"revoked"
            deliveries.append(Delivery(key=reply[i].decode(), body=reply[i + 1], queue=reply[i + 3].decode(),
                                       consumer_id=consumer_id, redeliveries=0 if revoked else int(reply[i + 2]),
                                       revoked=revoked))
        return deliveries, next_eta

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            self._run("ack", [self.prefix, *[part for d in deliveries for part in (d.consumer_id, d.key)]])

    def release(self, deliveries: Sequence[Delivery], *, delay: float = 0.0) -> None:
        if deliveries:
            self._run("release", [self.prefix, repr(delay), *[
                part for d in deliveries for part in (d.consumer_id, d.key, d.queue)]])

    def leases(self, alive: Sequence[str] = (), *, requeue: Sequence[str] = (), stale_after: float | None = None,
               redelivered: bool = True, running: Sequence[str] = ()) -> Leases:
        requeued = 0
        if needs_script(alive, requeue, stale_after):
            requeued = int(self._run("leases", leases_args(self.prefix, alive, requeue, stale_after, redelivered)))
        terminations = terminations_from(running, self.client.mget(cancelled_keys(self.prefix, running))) \
            if running else {}
        return Leases(requeued, terminations)

    def cancel(self, task_id: str, ttl: float, *, terminate: str | None = None) -> None:
        self.client.set(key(self.prefix, "cancelled", task_id), terminate or b"1", px=max(1, int(ttl * 1000)))

    def lock(self, name: str, owner: str, stale_after: float | None) -> bool:
        return bool(self._run("lock", [self.prefix, name, owner, "" if stale_after is None else repr(stale_after)]))

    def inspect(self, keys: Sequence[str] = (), *, holders: bool = False, queue: str | None = None,
                offset: int = 0, limit: int = 0) -> Holdings:
        holdings = self._inspect(keys)
        if holders:
            holdings = self._holders(holdings)
        if queue is not None and limit > 0:
            page = self.client.zrange(key(self.prefix, "queue", queue), offset, offset + limit - 1)
            holdings = replace(holdings, waiting=[k.decode() for k in page])  # type: ignore[union-attr]  # bytes
        return holdings

    def _holders(self, holdings: Holdings) -> Holdings:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.zrange(key(self.prefix, "heartbeats"), 0, -1, withscores=True)
            pipe.zrange(key(self.prefix, "delayed"), 0, -1, withscores=True)
            for queue in holdings.sizes:
                pipe.zrange(key(self.prefix, "queue", queue), 0, 0, withscores=True)
            (seconds, micros), beats, delayed, *heads = pipe.execute()
        now = seconds + micros / 1e6
        consumers = {consumer.decode(): now - beat for consumer, beat in beats}
        with self.client.pipeline(transaction=False) as pipe:
            for consumer in consumers:
                pipe.hgetall(key(self.prefix, "inflight", consumer))
            held_places = dict(zip(consumers, pipe.execute(), strict=True))
        held = {consumer: [k.decode() for k in places] for consumer, places in held_places.items()}
        inflight: dict[str, int] = {}
        for places in held_places.values():
            for place in places.values():  # "queue\nrank"
                queue = place.decode().split("\n", 1)[0]
                inflight[queue] = inflight.get(queue, 0) + 1
        waiting: list[tuple[str, float]] = []
        later: dict[str, int] = {}
        for member, eta in delayed:  # "queue\nkey"
            queue, _, message_key = member.decode().partition("\n")
            waiting.append((message_key, eta))
            later[queue] = later.get(queue, 0) + 1
        # A head's rank is when it became ready, less its priority credit (TASKQUEUE_PRIORITY_AGING each).
        oldest = {queue: head[0][1] + RANK_EPOCH for queue, head in zip(holdings.sizes, heads, strict=True) if head}
        return replace(holdings, consumers=consumers, held=held, delayed=waiting, inflight=inflight, later=later,
                       oldest=oldest)

    def _inspect(self, keys: Sequence[str]) -> Holdings:
        queues = sorted(q.decode() for q in self.client.smembers(key(self.prefix, "queues")))  # type: ignore[union-attr]
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zcard(key(self.prefix, "queue", queue))
            if keys:
                pipe.hmget(key(self.prefix, "msg"), list(keys))
                pipe.mget([key(self.prefix, "published", k) for k in keys])
            replies = pipe.execute()
        sizes = dict(zip(queues, replies[:len(queues)], strict=True))
        if not keys:
            return Holdings(sizes)
        bodies, markers = replies[len(queues):]
        return Holdings(sizes, {k: body for k, body in zip(keys, bodies, strict=True) if body is not None},
                        {k for k, marker in zip(keys, markers, strict=True) if marker})

    def close(self) -> None:
        self._threads.close_mine()
        self.client.close()
        self.client.connection_pool.disconnect()
