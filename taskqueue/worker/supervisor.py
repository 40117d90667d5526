"""The worker's parent: starts consumers, keeps their leases alive, enforces hard time limits,
replaces dead consumers, recovers messages of dead workers, and shuts down warm or cold.

Nothing here imports Django: a prefork worker on Redis runs this loop in the keeper (keeper.py),
a process without Django. What needs Django (starting a consumer, storing the failure of a task
killed at its hard limit) goes through the launcher; lease calls go through `leases` (the broker
itself, or `brokers.leases.RedisLeases` in the keeper).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Protocol

from . import WorkerConfig
from .slot import TaskSlot

logger = logging.getLogger("taskqueue.worker")
TICK = 0.1


class Leases(Protocol):
    def heartbeat(self, consumer_ids: list[str]) -> None: ...
    def recover(self, stale_after: float, consumer_ids: list[str] | None = None) -> int: ...
    def forget_consumer(self, consumer_id: str) -> None: ...


class Child(Protocol):
    killed_for: str | None

    def is_alive(self) -> bool: ...
    def stop(self) -> None: ...
    def kill(self, reason: str) -> None: ...
    def join(self, timeout: float) -> None: ...


class Consumer(Child, Protocol):
    consumer_id: str
    slot: TaskSlot
    reaped: bool
    can_be_killed: bool


class Launcher(Protocol):
    def consumer(self, consumer_id: str, slot: TaskSlot | None) -> Consumer:
        """Start a consumer (reusing `slot`, the slot of the one it replaces, if given)."""

    def scheduler(self) -> Child:
        """Start the scheduler (`--beat`)."""

    def settle(self, running: tuple[dict, bytes]) -> None:
        """Store the FAILURE of the task a consumer was killed for at its hard limit, and ack it."""


class Supervisor:
    """Runs a worker until SIGTERM/SIGINT: the first signal is a warm shutdown, the second cold."""

    def __init__(self, config: WorkerConfig, leases: Leases, launcher: Launcher, *, heartbeat_interval: float,
                 visibility_timeout: float, instance: str | None = None, spawned: int = 0):
        self.config = config
        self.leases = leases
        self.launcher = launcher
        self.heartbeat_interval = heartbeat_interval
        self.visibility_timeout = visibility_timeout
        self.consumers: list[Consumer] = []
        self.scheduler: Child | None = None
        self.signals_received = 0
        self._next_heartbeat = 0.0
        self.instance = instance or os.urandom(4).hex()
        self.spawned = spawned

    def install_signal_handlers(self) -> dict:
        """Count SIGTERM/SIGINT (the loop acts on them); returns the previous handlers."""
        return {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _on_signal(self, signum, frame) -> None:
        self.signals_received += 1

    def start(self) -> None:
        self.consumers = [self._spawn() for _ in range(self.config.concurrency)]
        if self.config.beat:
            self.scheduler = self.launcher.scheduler()

    def supervise(self) -> int:
        """Tick until a signal, then shut down; returns the exit code."""
        while not self.signals_received:
            self._tick()
            time.sleep(TICK)
        self._shutdown()
        return 0

    def _spawn(self, slot: TaskSlot | None = None) -> Consumer:
        self.spawned += 1
        consumer_id = f"{self.config.hostname}.{self.instance}.{self.spawned}"
        handle = self.launcher.consumer(consumer_id, slot)
        self.leases.heartbeat([consumer_id])
        return handle

    def _tick(self, replace: bool = True) -> None:
        try:
            self._enforce_time_limits()
            for index, handle in enumerate(self.consumers):
                if not handle.is_alive() and not handle.reaped:
                    self._reap(handle)
                    if replace:
                        self.consumers[index] = self._spawn(handle.slot)
            self._heartbeat()
            if replace and self.scheduler is not None and not self.scheduler.is_alive():
                logger.warning("The scheduler process ended; starting a new one")
                self.scheduler = self.launcher.scheduler()
        except Exception as exc:  # the broker may be down: keep supervising, try again next tick
            logger.warning("Supervisor tick failed: %s", exc)

    def _enforce_time_limits(self) -> None:
        now = time.time()
        for handle in self.consumers:
            current = handle.slot.read() if handle.can_be_killed else None
            if current and current[0].get("limit") and now - current[0]["started"] > current[0]["limit"]:
                info = current[0]
                logger.error("Task %s[%s] passed its hard time limit (%s s); killing its process",
                             info["task"], info["id"], info["limit"])
                handle.kill("time limit")
                handle.join(5)

    def _reap(self, handle: Consumer) -> None:
        """A consumer ended: fail its task if we killed it at the hard limit, requeue the rest."""
        current = handle.slot.read()
        if current and handle.killed_for == "time limit":
            self.launcher.settle(current)
            self._heartbeat(force=True)  # settling may have taken a while
        elif current:
            logger.error("Consumer %s died while running %s[%s]; requeueing it",
                         handle.consumer_id, current[0]["task"], current[0]["id"])
        handle.slot.end()
        handle.reaped = True
        requeued = self.leases.recover(0, [handle.consumer_id])
        if requeued and not current:
            logger.warning("Requeued %d message(s) held by %s", requeued, handle.consumer_id)

    def _heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.heartbeat_interval
        self.leases.heartbeat([h.consumer_id for h in self.consumers if h.is_alive()])
        recovered = self.leases.recover(self.visibility_timeout)
        if recovered:
            logger.warning("Recovered %d message(s) from workers that stopped heartbeating", recovered)

    def _shutdown(self) -> None:
        logger.info("Warm shutdown: finishing running tasks (send the signal again to stop at once)")
        for handle in self.consumers:
            handle.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        cold = False
        while any(h.is_alive() for h in self.consumers):
            if self.signals_received > 1 and not cold:
                logger.warning("Cold shutdown: killing consumers; their tasks go back to the queue")
                cold = True
                for handle in self.consumers:
                    handle.kill("shutdown")
            self._tick(replace=False)
            time.sleep(TICK)
        if self.scheduler is not None:
            self.scheduler.join(5)
        for handle in self.consumers:
            handle.join(1)
            if handle.killed_for is None or handle.killed_for == "shutdown":
                handle.slot.end()
            self.leases.recover(0, [handle.consumer_id])
            self.leases.forget_consumer(handle.consumer_id)
            handle.slot.close()
