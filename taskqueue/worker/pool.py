"""How a consumer runs: in a forked child process (prefork) or in a thread (threads, solo); the
launcher that starts them for a supervisor running in the runworker process."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

from django.db import connections

from . import ChildLimits, WorkerConfig
from .child import die_with_parent
from .consumer import consume
from .slot import TaskSlot


class ConsumerHandle:
    """One consumer as the supervisor sees it: its lease id, its current task, start/stop/kill."""

    def __init__(self, consumer_id: str, hostname: str, queues: list[str], prefetch: int,
                 limits: ChildLimits, shared: bool, slot: TaskSlot | None = None, signal_shutdown: bool = False):
        self.consumer_id = consumer_id
        self.slot = slot or TaskSlot(shared=shared)
        self.args = (consumer_id, hostname, queues, self.slot)
        self.prefetch, self.limits = prefetch, limits
        self.signal_shutdown = signal_shutdown
        self.killed_for: str | None = None  # set when the supervisor kills it on purpose
        self.reaped = False

    def start(self) -> None: ...
    def is_alive(self) -> bool: ...
    def stop(self) -> None: ...
    def kill(self, reason: str) -> None: ...
    def join(self, timeout: float) -> None: ...

    @property
    def can_be_killed(self) -> bool:
        return False


class ForkedProcess:
    """A forked child: SIGTERM asks it to finish what it is doing and exit; SIGKILL ends it."""

    process: multiprocessing.Process
    killed_for: str | None = None

    def start(self) -> None:
        connections.close_all()  # a child must never share its parent's database sockets
        self.process.start()

    def is_alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        if self.process.pid and self.process.is_alive():
            os.kill(self.process.pid, signal.SIGTERM)

    def kill(self, reason: str) -> None:
        self.killed_for = reason
        if self.process.pid and self.process.is_alive():
            os.kill(self.process.pid, signal.SIGKILL)

    def join(self, timeout: float) -> None:
        self.process.join(timeout)

    @property
    def pid(self) -> int | None:
        return self.process.pid


class ProcessConsumer(ForkedProcess, ConsumerHandle):
    """The prefork pool's consumer: the consumer loop in a forked child."""

    def __init__(self, *args, **kwargs):
        ConsumerHandle.__init__(self, *args, shared=True, **kwargs)
        self.process = multiprocessing.get_context("fork").Process(
            target=run_consumer, args=(*self.args, self.prefetch, self.limits, self.signal_shutdown), daemon=False,
            name=f"consumer-{self.consumer_id.rsplit('.', 1)[-1]}")

    @property
    def can_be_killed(self) -> bool:
        return True


class ThreadConsumer(ConsumerHandle):
    """A thread running the consumer loop (threads and solo pools: no hard time limit)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, shared=False, **kwargs)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._main, name=f"consumer-{self.consumer_id}", daemon=True)

    def _main(self) -> None:
        try:
            consume(*self.args, should_stop=self.stop_event.is_set, prefetch=self.prefetch, limits=self.limits)
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
                 limits: ChildLimits, signal_shutdown: bool = False) -> None:
    """A consumer process's life (forked here, or spawned by the keeper: worker/child.py). With
    `signal_shutdown` it sends `worker_shutdown` as it stops: the keeper cannot, having no Django."""
    from ..brokers import reset_broker

    die_with_parent()
    stopping = threading.Event()
    # Flag-only handler: the task in progress finishes, the loop then exits.
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    reset_broker()
    try:
        consume(consumer_id, hostname, queues, slot, stopping.is_set, prefetch=prefetch, limits=limits)
    finally:
        if signal_shutdown:
            from .. import signals

            signals.worker_shutdown.send(sender=None)
        connections.close_all()


class SchedulerProcess(ForkedProcess):
    """`runworker --beat`: the scheduler in a forked child."""

    def __init__(self):
        self.process = multiprocessing.get_context("fork").Process(target=run_scheduler, name="scheduler")


def run_scheduler() -> None:
    from ..brokers import reset_broker
    from ..scheduler import Scheduler

    die_with_parent()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reset_broker()
    try:
        Scheduler().run(stopping.is_set)
    finally:
        connections.close_all()


def make_consumer(pool: str, *args, **kwargs) -> ConsumerHandle:
    return ProcessConsumer(*args, **kwargs) if pool == "prefork" else ThreadConsumer(*args, **kwargs)


def settle_killed(running: tuple[dict, bytes], hostname: str, reason: str) -> None:
    """Store the outcome of a task whose process was killed (at its hard time limit: FAILURE;
    revoked with terminate: REVOKED), and ack it."""
    from ..brokers import Delivery, get_broker
    from ..exceptions import TaskRevokedError, TimeLimitExceeded
    from .execute import fail_killed

    info, body = running
    delivery = Delivery(info["key"], body, info["queue"], info["consumer"])
    if reason == "revoked":
        error: Exception = TaskRevokedError("revoked with terminate: its process was stopped")
    else:
        error = TimeLimitExceeded(f"hard time limit ({info['limit']} s) exceeded")
    fail_killed(delivery, body, hostname, error, get_broker())


class ForkLauncher:
    """Starts consumers as forked children (prefork) or threads, and the scheduler as a forked
    child; settles a task killed at its hard limit in this process."""

    def __init__(self, config: WorkerConfig, queues: list[str], signal_shutdown: bool = False):
        self.config, self.queues, self.signal_shutdown = config, queues, signal_shutdown

    def consumer(self, consumer_id: str, slot: TaskSlot | None) -> ConsumerHandle:
        handle = make_consumer(self.config.pool, consumer_id, self.config.hostname, self.queues, slot=slot,
                               prefetch=self.config.prefetch, limits=self.config.child_limits,
                               signal_shutdown=self.signal_shutdown)
        handle.start()
        return handle

    def scheduler(self) -> SchedulerProcess:
        process = SchedulerProcess()
        process.start()
        return process

    def settle(self, running: tuple[dict, bytes], reason: str) -> None:
        settle_killed(running, self.config.hostname, reason)
