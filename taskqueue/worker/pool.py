"""How a consumer runs: in a forked child process (prefork) or in a thread (threads, solo)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

from django.db import connections

from .consumer import consume
from .slot import TaskSlot


class ConsumerHandle:
    """One consumer as the supervisor sees it: its lease id, its current task, start/stop/kill."""

    def __init__(self, consumer_id: str, hostname: str, queues: list[str], prefetch: int,
                 max_tasks: int | None, shared: bool):
        self.consumer_id = consumer_id
        self.slot = TaskSlot(shared=shared)
        self.args = (consumer_id, hostname, queues, self.slot)
        self.prefetch, self.max_tasks = prefetch, max_tasks
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
            target=_child_main, args=(*self.args, self.prefetch, self.max_tasks), daemon=False,
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
            consume(*self.args, should_stop=self.stop_event.is_set, prefetch=self.prefetch,
                    max_tasks=self.max_tasks)
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


def _child_main(consumer_id, hostname, queues, slot, prefetch, max_tasks) -> None:
    from ..brokers import reset_broker

    _die_with_parent()
    stopping = threading.Event()
    # Flag-only handler: the task in progress finishes, the loop then exits.
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    reset_broker()
    try:
        consume(consumer_id, hostname, queues, slot, stopping.is_set, prefetch=prefetch, max_tasks=max_tasks)
    finally:
        connections.close_all()


class SchedulerProcess(ForkedProcess):
    """`runworker --beat`: the scheduler in a forked child."""

    def __init__(self):
        self.process = multiprocessing.get_context("fork").Process(target=_scheduler_main, name="scheduler")


def _scheduler_main() -> None:
    from ..brokers import reset_broker
    from ..scheduler import Scheduler

    _die_with_parent()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reset_broker()
    try:
        Scheduler().run(stopping.is_set)
    finally:
        connections.close_all()


def _die_with_parent() -> None:
    """Linux: a consumer whose supervisor is SIGKILLed dies too, instead of running unsupervised."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def make_consumer(pool: str, *args, **kwargs) -> ConsumerHandle:
    return ProcessConsumer(*args, **kwargs) if pool == "prefork" else ThreadConsumer(*args, **kwargs)
