"""How a consumer runs: in a forked child process (prefork; its handle is in `processes`) or in
a thread (threads, solo); the launcher that starts them for a supervisor running in the
runworker process (the keeper has its own, which spawns fresh interpreters)."""

from __future__ import annotations

import os
import signal
import threading

from django.db import connections

from .. import signals
from ..brokers import Delivery, get_broker, reset_broker
from ..exceptions import TaskRevokedError, TimeLimitExceeded
from ..scheduler import Scheduler
from . import ChildLimits, WorkerConfig, die_with_parent
from .aioconsumer import consume_async
from .consumer import consume
from .execute import fail_killed
from .processes import ChildProcess, ConsumerProcess, fork
from .slot import TaskSlot


class ThreadConsumer:
    """A thread running the consumer loop (threads and solo pools: no hard time limit)."""

    can_be_killed = False
    killed_for: str | None = None

    def __init__(self, consumer_id: str, hostname: str, queues: list[str], prefetch: int, limits: ChildLimits,
                 slot: TaskSlot | None = None):
        self.consumer_id, self.slot, self.reaped = consumer_id, slot or TaskSlot(shared=False), False
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(hostname, queues, prefetch, limits),
                                       name=f"consumer-{consumer_id}", daemon=True)

    def _main(self, hostname: str, queues: list[str], prefetch: int, limits: ChildLimits) -> None:
        try:
            consume(self.consumer_id, hostname, queues, self.slot, self.stop_event.is_set, prefetch=prefetch,
                    limits=limits)
        finally:
            connections.close_all()

    def start(self) -> None:
        self.thread.start()

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.stop_event.set()

    def kill(self, reason: str) -> None:
        self.stop_event.set()  # threads cannot be killed; they stop after their task

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    pid = property(lambda self: os.getpid())


def run_consumer(consumer_id: str, hostname: str, queues: list[str], slot: TaskSlot, prefetch: int,
                 limits: ChildLimits, signal_shutdown: bool = False, async_capacity: int | None = None) -> None:
    """A consumer process's life (forked here, or spawned by the keeper: worker/child.py). With
    `signal_shutdown` it sends `worker_shutdown` as it stops: the keeper cannot, having no Django.
    With `async_capacity`, the asyncio pool's consumer, running that many tasks at once."""
    die_with_parent()
    stopping = threading.Event()
    # Flag-only handler: the task in progress finishes, the loop then exits.
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    reset_broker()
    signals.worker_process_init.send(sender=None)
    try:
        if async_capacity:
            consume_async(consumer_id, hostname, queues, stopping.is_set, async_capacity, limits)
        else:
            consume(consumer_id, hostname, queues, slot, stopping.is_set, prefetch=prefetch, limits=limits)
    finally:
        if signal_shutdown:
            signals.worker_shutdown.send(sender=None)
        connections.close_all()


def run_scheduler() -> None:
    die_with_parent()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reset_broker()
    try:
        Scheduler().run(stopping.is_set)
    finally:
        connections.close_all()


def settle_killed(running: tuple[dict, bytes], hostname: str, reason: str) -> None:
    """Store the outcome of a task whose process was killed (at its hard time limit: FAILURE;
    revoked with terminate: REVOKED, `reason` "revoked:SIGTERM" naming the signal asked for), and ack it."""
    info, body = running
    delivery = Delivery(info["key"], body, info["queue"], info["consumer"])
    reason, _, signal_name = reason.partition(":")
    signum = None
    if reason == "revoked":
        error: Exception = TaskRevokedError("revoked with terminate: its process was stopped")
        signal_name = (signal_name or "SIGTERM").upper()
        signum = int(signal.Signals[signal_name if signal_name.startswith("SIG") else f"SIG{signal_name}"])
    else:
        error = TimeLimitExceeded(f"hard time limit ({info['limit']} s) exceeded")
    fail_killed(delivery, body, hostname, error, get_broker(), task_name=info.get("task", ""), signum=signum)


class ForkLauncher:
    """Starts consumers as forked children (prefork) or threads, and the scheduler as a forked
    child; settles a task killed at its hard limit in this process."""

    def __init__(self, config: WorkerConfig, queues: list[str], signal_shutdown: bool = False):
        self.config, self.queues, self.signal_shutdown = config, queues, signal_shutdown

    def consumer(self, consumer_id: str, slot: TaskSlot | None) -> ConsumerProcess | ThreadConsumer:
        config = self.config
        if config.pool not in ("prefork", "asyncio"):
            handle = ThreadConsumer(consumer_id, config.hostname, self.queues, config.prefetch, config.child_limits,
                                    slot)
            handle.start()
            return handle
        slot = slot or TaskSlot(shared=True)
        connections.close_all()  # a child must never share its parent's database sockets
        capacity = config.concurrency if config.pool == "asyncio" else None
        pid = fork(lambda: run_consumer(consumer_id, config.hostname, self.queues, slot, config.prefetch,
                                        config.child_limits, self.signal_shutdown, capacity),
                   name=f"consumer-{consumer_id.rsplit('.', 1)[-1]}")
        return ConsumerProcess(pid, consumer_id, slot)

    def scheduler(self) -> ChildProcess:
        connections.close_all()
        return ChildProcess(fork(run_scheduler, name="scheduler"))

    def settle(self, running: tuple[dict, bytes], reason: str) -> None:
        settle_killed(running, self.config.hostname, reason)
