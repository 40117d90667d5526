"""The worker's parent: starts consumers, keeps their leases alive, enforces hard time limits,
replaces dead consumers, recovers messages of dead workers, and shuts down warm or cold.

Nothing here imports Django: a prefork worker on Redis runs this loop in the keeper (keeper.py),
a process without Django. What needs Django (starting a consumer, storing the failure of a task
killed at its hard limit) goes through the launcher; lease calls go through `broker.leases` (the
broker itself, or `brokers.leases.RedisLeases` in the keeper).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Sequence
from typing import Any, Protocol

from . import WorkerConfig
from .slot import TaskSlot

logger = logging.getLogger("taskqueue.worker")
TICK = 0.1
REVOCATION_CHECK = 0.5  # seconds between asking the broker whether a running task was revoked with terminate
# revoke(terminate=True, signal=...): these end the task (its process is killed and replaced, the
# task stays REVOKED); any other signal is sent to the process for the task to handle.
_ENDING_SIGNALS = {"SIGTERM", "SIGKILL", "SIGQUIT", "SIGINT", "TERM", "KILL", "QUIT", "INT"}


class LeaseBroker(Protocol):
    takes_back_on_disconnect: bool  # Broker's

    def leases(self, alive: Sequence[str] = (), *, requeue: Sequence[str] = (), stale_after: float | None = None,
               redelivered: bool = True, running: Sequence[str] = ()) -> Any:
        """Broker.leases: returns (requeued, terminations)."""


class Child(Protocol):
    killed_for: str | None

    @property
    def pid(self) -> int | None: ...  # None for a thread

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

    def settle(self, running: tuple[dict, bytes], reason: str) -> None:
        """Store the outcome of the task a consumer was killed for (its hard time limit: FAILURE;
        revoked with terminate: REVOKED), and ack it."""


class Supervisor:
    """Runs a worker until SIGTERM/SIGINT: the first signal is a warm shutdown, the second cold."""

    def __init__(self, config: WorkerConfig, broker: LeaseBroker, launcher: Launcher, *, heartbeat_interval: float,
                 visibility_timeout: float, instance: str | None = None, spawned: int = 0):
        self.config = config
        self.broker = broker
        self.launcher = launcher
        self.heartbeat_interval = heartbeat_interval
        self.visibility_timeout = visibility_timeout
        self.consumers: list[Consumer] = []
        self.scheduler: Child | None = None
        self.signals_received = 0
        self._next_heartbeat = 0.0
        self.instance = instance or os.urandom(4).hex()
        self.spawned = spawned
        self._unrecovered: list[str] = []  # dead consumers whose messages the broker has not taken back yet
        self._next_revocation_check = 0.0
        self._signalled: set[str] = set()  # tasks already sent a non-ending terminate signal
        self._lost_broker = False
        self._take_over_from = 0.0  # no recovering other workers' messages before this (monotonic)

    def install_signal_handlers(self) -> dict:
        """Count SIGTERM/SIGINT (the loop acts on them); returns the previous handlers."""
        return {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _on_signal(self, signum, frame) -> None:
        self.signals_received += 1

    def start(self) -> None:
        self.consumers = [self._spawn() for _ in range(self.config.consumers)]
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
        self._try("A first heartbeat", self.broker.leases, [consumer_id])  # the next tick renews it anyway
        return handle

    def _tick(self, replace: bool = True) -> None:
        """Each duty on its own: a broker or database outage in one (a heartbeat, say) must not keep
        a dead consumer from being replaced, nor a hard time limit from being enforced."""
        self._try("Enforcing time limits", self._enforce_time_limits)
        self._try("Stopping revoked tasks", self._enforce_revocations)
        for index, handle in enumerate(self.consumers):
            if handle.is_alive():
                continue
            if not handle.reaped:
                self._try("Reaping a consumer", self._reap, handle)
            if replace and handle.reaped:  # tried again next tick if starting one fails
                self._try("Starting a consumer", self._replace, index)
        if self._unrecovered:
            self._try("Requeueing what dead consumers held", self._recover_dead)
        self._try("Heartbeat", self._heartbeat)
        if replace and self.scheduler is not None and not self.scheduler.is_alive():
            logger.warning("The scheduler process ended; starting a new one")
            self.scheduler = self.launcher.scheduler()

    def _replace(self, index: int) -> None:
        self.consumers[index] = self._spawn(self.consumers[index].slot)

    @staticmethod
    def _try(what: str, duty, *args) -> None:
        try:
            duty(*args)
        except Exception as exc:  # the broker or database may be down: try again next tick
            logger.warning("%s failed: %s", what, exc)

    def _enforce_time_limits(self) -> None:
        now = time.time()
        for handle in self.consumers:
            current = handle.slot.read() if handle.can_be_killed else None
            if current and current[0].get("limit") and now - current[0]["started"] > current[0]["limit"]:
                info = current[0]
                logger.error("Task %s[%s] passed its hard time limit (%s s); killing its process",
                             info["task"], info["id"], info["limit"])
                self._kill(handle, "time limit")

    def _enforce_revocations(self) -> None:
        """Stop the running tasks revoked with terminate, on this worker."""
        now = time.monotonic()
        if now < self._next_revocation_check:
            return
        self._next_revocation_check = now + REVOCATION_CHECK
        running = {}
        for handle in self.consumers:
            current = handle.slot.read() if handle.is_alive() else None
            if current:
                running[current[0]["id"]] = handle
        if not running:
            self._signalled.clear()
            return
        for task_id, signal_name in self.broker.leases(running=list(running)).terminations.items():
            handle = running[task_id]
            if not handle.can_be_killed:  # a thread cannot be stopped; its late result will not overwrite REVOKED
                continue
            if signal_name.upper() in _ENDING_SIGNALS:
                logger.warning("Task %s revoked with terminate: stopping its process", task_id)
                self._kill(handle, f"revoked:{signal_name.upper()}")
            elif task_id not in self._signalled:
                self._signalled.add(task_id)
                logger.warning("Task %s revoked with terminate: sending it %s", task_id, signal_name)
                assert handle.pid is not None  # a process (can_be_killed)
                os.kill(handle.pid, _signal_number(signal_name))

    def _kill(self, handle: Consumer, reason: str) -> None:
        """Kill a consumer's process for its task (hard time limit, revoked with terminate). Where the
        broker takes a dead consumer's messages back itself (RabbitMQ), the task's outcome is stored
        first: its message comes back the moment the process dies, and whoever takes it must find
        the task settled."""
        current = handle.slot.read() if self.broker.takes_back_on_disconnect else None
        if current:
            self._try("Storing the outcome of a task whose process is killed", self.launcher.settle, current, reason)
            handle.slot.end()  # settled: _reap has nothing left to settle
        handle.kill(reason)
        handle.join(5)

    def _reap(self, handle: Consumer) -> None:
        """A consumer ended: settle its task if we killed it (hard limit, revoked), requeue the rest."""
        current = handle.slot.read()
        if current and (handle.killed_for or "").split(":")[0] in ("time limit", "revoked"):
            # If storing its outcome fails (an outage), the task is requeued with the rest instead.
            self._try("Storing the outcome of a task whose process was killed", self.launcher.settle, current,
                      handle.killed_for)
            self._try("Heartbeat", self._heartbeat, True)  # settling may have taken a while
        elif current:
            logger.error("Consumer %s died while running %s[%s]; requeueing it",
                         handle.consumer_id, current[0]["task"], current[0]["id"])
        handle.slot.end()
        handle.reaped = True
        self._unrecovered.append(handle.consumer_id)
        self._try("Requeueing what a dead consumer held", self._recover_dead)

    def _recover_dead(self) -> None:
        while self._unrecovered:
            consumer_id = self._unrecovered[0]
            requeued = self.broker.leases(requeue=[consumer_id]).requeued
            self._unrecovered.pop(0)
            if requeued:
                logger.warning("Requeued %d message(s) held by %s", requeued, consumer_id)

    def _heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.heartbeat_interval
        # After the broker was lost, every worker lost it with us: their leases look stale until they
        # renew them. Give them two beats to do so before taking anything over, or a long task would
        # run twice.
        take_over = not self._lost_broker and now >= self._take_over_from
        try:
            recovered = self.broker.leases([h.consumer_id for h in self.consumers if h.is_alive()],
                                           stale_after=self.visibility_timeout if take_over else None).requeued
        except Exception:
            self._lost_broker = True
            raise
        if self._lost_broker:
            self._lost_broker = False
            self._take_over_from = now + 2 * self.heartbeat_interval
        if recovered:
            logger.warning("Recovered %d message(s) from workers that stopped heartbeating", recovered)

    def _shutdown(self) -> None:
        logger.warning("Warm shutdown: finishing running tasks (send the signal again to stop at once)")
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
            self.broker.leases(requeue=[handle.consumer_id])
            handle.slot.close()


def _signal_number(name: str) -> int:
    name = name.upper()
    return getattr(signal, name if name.startswith("SIG") else f"SIG{name}")
