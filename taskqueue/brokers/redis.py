"""Redis broker: ready lists, a delayed sorted set and per-consumer leases (key schema in lua/*.lua)."""

from __future__ import annotations

import threading
import time

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry

from ..conf import get_settings
from .base import Broker, Delivery, Leases
from .leases import LUA, cancelled_key, heartbeat_args, heartbeats_key, recover_args, terminations_from

ANNOUNCE_EVERY = 60.0  # seconds; `sizes()` lists a queue again within this long after a Redis flush


def connect(url: str, timeout: float | None = None) -> redis.Redis:
    """A client that retries a dropped connection a few times before raising, and gives up on a
    server that accepts but does not answer after `timeout` seconds (TASKQUEUE_BROKER_TIMEOUT):
    no retry then, a server that hangs once will hang again."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=2, socket_keepalive=True, health_check_interval=30,
        socket_timeout=get_settings().BROKER_TIMEOUT if timeout is None else timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3, supported_errors=(redis.ConnectionError,)),
    )


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

    def run_script(self, script: Script, args: list) -> object:
        return self.run_scripts([(script, args)])[0]

    def run_scripts(self, calls: list[tuple[Script, list]], before: tuple = ()) -> list:
        """Script calls by EVALSHA in one round trip on this thread's connection, after the
        commands `before` (a BLPOP, say). Not redis-py's Script objects in a pipeline: those ask
        SCRIPT EXISTS first, a second round trip on every call. If Redis lost the scripts
        (restarted, or its script cache flushed), they are loaded and the calls sent again, without
        `before`, which ran (its replies are then None)."""
        evals = [("EVALSHA", script.sha, 0, *args) for script, args in calls]
        try:
            return self.pipelined([*before, *evals])
        except redis.exceptions.NoScriptError:
            for script in {script.sha: script for script, _ in calls}.values():
                self.get().script_load(script.script)
            return [None] * len(before) + self.pipelined(evals)

    def pipelined(self, commands: list[tuple]) -> list:
        """Commands in one round trip on this thread's connection, retried as redis-py retries.
        Not redis-py's pipeline (it checks a connection out of the pool, probing its socket) nor
        `client.execute_command` (its lock and reply-callback lookup cost a tenth of a local round
        trip). Replies come back in order; an error reply is raised once all are read, so the
        connection stays in step."""
        conn = self.get().connection

        def send_and_read() -> list:
            conn.send_packed_command(conn.pack_commands(commands))
            replies = []
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except redis.exceptions.ResponseError as exc:
                    replies.append(exc)
            return replies

        replies = conn.retry.call_with_retry(send_and_read, lambda _error: conn.disconnect())
        for reply in replies:
            if isinstance(reply, redis.exceptions.ResponseError):
                raise reply
        return replies


class RedisBroker(Broker):
    """Queues in Redis; delays stay in Redis until due, never in worker memory."""

    def __init__(self, url: str, prefix: str = "taskqueue"):
        self.url = url
        self.prefix = prefix
        self.client = connect(url)
        self._threads = ThreadClients(self.client)
        self._announced: dict[str, float] = {}  # queue -> when this process last added it to {p}:queues
        # An idle reserve blocks in slices of this, well under the socket timeout.
        self._block_limit = min(1.0, (self.client.get_connection_kwargs().get("socket_timeout") or 2.0) / 2)
        self._scripts = {
            name: self.client.register_script((LUA / f"{name}.lua").read_text())
            for name in ("publish", "reserve", "ack", "release", "recover", "lock", "heartbeat")
        }

    def _run(self, name: str, args: list) -> object:
        return self._threads.run_script(self._scripts[name], args)

    def _check_queue(self, queue: str) -> None:
        if not queue or "\n" in queue:
            raise ValueError(f"invalid queue name {queue!r}")

    def publish(self, queue: str, key: str, body: bytes, *, eta: float | None = None,
                priority: int = 0, remember: float | None = None) -> None:
        self._run("publish", self._publish_args(queue, key, body, eta, remember))

    def publish_many(self, items: list[tuple[str, str, bytes, float | None, int]], *,
                     remember: float | None = None) -> None:
        publish = self._scripts["publish"]
        self._threads.run_scripts([(publish, self._publish_args(queue, key, body, eta, remember))
                                   for queue, key, body, eta, _ in items])

    def _publish_args(self, queue: str, key: str, body: bytes, eta: float | None, remember: float | None) -> list:
        announced = self._announced.get(queue)
        now = time.monotonic()
        if announced is None or now - announced > ANNOUNCE_EVERY:
            self._check_queue(queue)
            self._announced[queue] = now
            announce = "1"
        else:
            announce = ""
        args = [self.prefix, queue, key, body, "" if eta is None else repr(eta), announce]
        if remember:
            args.append(str(int(remember * 1000)))
        return args

    def published(self, keys: list[str]) -> set[str]:
        markers = self.client.mget([f"{self.prefix}:published:{key}" for key in keys]) if keys else []
        return {key for key, marker in zip(keys, markers, strict=True) if marker}

    def reserve(self, consumer_id: str, queues: list[str], *, count: int = 1,
                timeout: float = 1.0) -> list[Delivery]:
        deliveries, next_eta = self._take(consumer_id, queues, count)
        if deliveries or timeout <= 0:
            return deliveries
        wait = timeout if next_eta is None else max(0.0, min(timeout, next_eta - time.time()))
        deadline = time.monotonic() + wait
        # Sleep until a publish pushes a wake token (or the next delayed message is due). The reserve
        # (of one message: see Broker.reserve) is pipelined behind the BLPOP: Redis runs it the moment
        # the BLPOP returns, in one round trip. Each BLPOP blocks well under the socket timeout.
        wake_keys = [f"{self.prefix}:wake:{q}" for q in queues]
        while True:  # bounded by `deadline`
            block = max(0.001, min(deadline - time.monotonic(), self._block_limit))
            reply = self._threads.run_scripts([(self._scripts["reserve"], [self.prefix, consumer_id, 1, *queues])],
                                              before=(("BLPOP", *wake_keys, block),))[1]
            deliveries = self._parse(consumer_id, reply)[0]
            if deliveries or time.monotonic() >= deadline:
                return deliveries

    def _take(self, consumer_id: str, queues: list[str], count: int) -> tuple[list[Delivery], float | None]:
        return self._parse(consumer_id, self._run("reserve", [self.prefix, consumer_id, count, *queues]))

    @staticmethod
    def _parse(consumer_id: str, reply: list) -> tuple[list[Delivery], float | None]:
        next_eta = float(reply[0]) if reply[0] else None
        deliveries = [
            Delivery(key=reply[i].decode(), body=reply[i + 1], redeliveries=int(reply[i + 2]),
                     queue=reply[i + 3].decode(), consumer_id=consumer_id)
            for i in range(1, len(reply), 4)
        ]
        return deliveries, next_eta

    def ack(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            self._run("ack", [self.prefix, *[part for d in deliveries for part in (d.consumer_id, d.key)]])

    def release(self, delivery: Delivery, *, delay: float = 0.0) -> None:
        self.release_many([delivery], delay=delay)

    def release_many(self, deliveries: list[Delivery], *, delay: float = 0.0) -> None:
        if deliveries:
            self._run("release", [self.prefix, repr(delay), *[
                part for d in deliveries for part in (d.consumer_id, d.key, d.queue)]])

    def heartbeat(self, consumer_ids: list[str]) -> None:
        if consumer_ids:
            self._run("heartbeat", heartbeat_args(self.prefix, consumer_ids))

    def recover(self, stale_after: float, consumer_ids: list[str] | None = None, *, redelivered: bool = True) -> int:
        return int(self._run("recover", recover_args(self.prefix, stale_after, consumer_ids, redelivered)))

    def forget_consumer(self, consumer_id: str) -> None:
        self.client.zrem(heartbeats_key(self.prefix), consumer_id)

    def cancel(self, task_id: str, ttl: float, *, terminate: str | None = None) -> None:
        self.client.set(cancelled_key(self.prefix, task_id), terminate or b"1", px=max(1, int(ttl * 1000)))

    def terminations(self, task_ids: list[str]) -> dict[str, str]:
        return terminations_from(task_ids, self.client.mget([cancelled_key(self.prefix, i) for i in task_ids])
                                 if task_ids else [])

    def contains(self, key: str) -> bool:
        return bool(self.client.hexists(f"{self.prefix}:msg", key))

    def body(self, key: str) -> bytes | None:
        return self.client.hget(f"{self.prefix}:msg", key)

    def leases(self) -> Leases:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.zrange(heartbeats_key(self.prefix), 0, -1, withscores=True)
            pipe.zrange(f"{self.prefix}:delayed", 0, -1, withscores=True)
            (seconds, micros), beats, delayed = pipe.execute()
        now = seconds + micros / 1e6
        consumers = {consumer.decode(): now - beat for consumer, beat in beats}
        with self.client.pipeline(transaction=False) as pipe:
            for consumer in consumers:
                pipe.hkeys(f"{self.prefix}:inflight:{consumer}")
            held = {consumer: [key.decode() for key in keys] for consumer, keys in zip(consumers, pipe.execute(),
                                                                                       strict=True)}
        # a delayed member is "queue\nkey"
        return Leases(consumers, held, [(member.decode().split("\n", 1)[-1], eta) for member, eta in delayed])

    def purge(self, queue: str) -> int:
        list_key = f"{self.prefix}:q:{queue}"
        with self.client.pipeline(transaction=True) as pipe:
            pipe.lrange(list_key, 0, -1)
            pipe.delete(list_key)
            keys, _ = pipe.execute()
        if keys:
            self.client.hdel(f"{self.prefix}:msg", *keys)
        return len(keys)

    def sizes(self) -> dict[str, int]:
        queues = sorted(q.decode() for q in self.client.smembers(f"{self.prefix}:queues"))
        with self.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(f"{self.prefix}:q:{queue}")
            return dict(zip(queues, pipe.execute(), strict=True))

    def acquire_lock(self, name: str, consumer_id: str, stale_after: float) -> bool:
        """lock_key support (used by taskqueue.locks, not part of the broker contract)."""
        return bool(self._run("lock", [self.prefix, name, consumer_id, repr(stale_after), "acquire"]))

    def release_lock(self, name: str, consumer_id: str) -> None:
        self._run("lock", [self.prefix, name, consumer_id, "0", "release"])

    def close(self) -> None:
        self._threads.close_mine()
        self.client.close()
        self.client.connection_pool.disconnect()
