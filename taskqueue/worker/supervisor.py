"""The worker's parent: starts consumers, keeps their leases alive, enforces hard time limits,
replaces dead consumers, recovers messages of dead workers, and shuts down warm or cold."""

from __future__ import annotations

import logging
import signal
import time
import uuid

from .. import signals
from ..brokers import Delivery, get_broker
from ..conf import get_settings
from ..exceptions import TimeLimitExceeded
from . import WorkerConfig
from .banner import banner
from .execute import fail_killed
from .pool import ConsumerHandle, SchedulerProcess, make_consumer

logger = logging.getLogger("taskqueue.worker")
TICK = 0.1


class Supervisor:
    """Runs a worker until SIGTERM/SIGINT: the first signal is a warm shutdown, the second cold."""

    def __init__(self, config: WorkerConfig):
        self.config = config
        self.settings = get_settings()
        self.broker = get_broker()
        self.consumers: list[ConsumerHandle] = []
        self.signals_received = 0
        self._next_heartbeat = 0.0
        self._instance = uuid.uuid4().hex[:8]
        self._spawned = 0
        self.scheduler: SchedulerProcess | None = None

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            print(banner(self.config), flush=True)
            self.consumers = [self._spawn() for _ in range(self.config.concurrency)]
            if self.config.beat:
                self.scheduler = SchedulerProcess()
                self.scheduler.start()
            signals.worker_ready.send(sender=self)
            print(f"[taskqueue] worker {self.config.hostname} ready", flush=True)
            while not self.signals_received:
                self._tick()
                time.sleep(TICK)
            self._shutdown()
            signals.worker_shutdown.send(sender=self)
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum, frame) -> None:
        self.signals_received += 1  # flag only: the loop acts on it

    def _spawn(self) -> ConsumerHandle:
        self._spawned += 1
        consumer_id = f"{self.config.hostname}.{self._instance}.{self._spawned}"
        handle = make_consumer(self.config.pool, consumer_id, self.config.hostname, self.queues,
                               prefetch=self.config.prefetch, max_tasks=self.config.max_tasks_per_child)
        handle.start()
        self.broker.heartbeat([consumer_id])
        return handle

    @property
    def queues(self) -> list[str]:
        return self.config.queues or [self.settings.DEFAULT_QUEUE]

    def _tick(self, replace: bool = True) -> None:
        try:
            self._enforce_time_limits()
            for index, handle in enumerate(self.consumers):
                if not handle.is_alive() and not handle.reaped:
                    self._reap(handle)
                    if replace:
                        self.consumers[index] = self._spawn()
            self._heartbeat()
            if replace and self.scheduler is not None and not self.scheduler.is_alive():
                logger.warning("The scheduler process ended; starting a new one")
                self.scheduler = SchedulerProcess()
                self.scheduler.start()
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

    def _reap(self, handle: ConsumerHandle) -> None:
        """A consumer ended: fail its task if we killed it at the hard limit, requeue the rest."""
        current = handle.slot.read()
        if current and handle.killed_for == "time limit":
            info, body = current
            delivery = Delivery(info["key"], body, info["queue"], info["consumer"])
            error = TimeLimitExceeded(f"hard time limit ({info['limit']} s) exceeded")
            fail_killed(delivery, body, self.config.hostname, error, self.broker)
        elif current:
            logger.error("Consumer %s died while running %s[%s]; requeueing it",
                         handle.consumer_id, current[0]["task"], current[0]["id"])
        handle.slot.end()
        handle.reaped = True
        requeued = self.broker.recover(0, [handle.consumer_id])
        if requeued and not current:
            logger.warning("Requeued %d message(s) held by %s", requeued, handle.consumer_id)

    def _heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.settings.heartbeat_interval
        self.broker.heartbeat([h.consumer_id for h in self.consumers if h.is_alive()])
        recovered = self.broker.recover(self.settings.VISIBILITY_TIMEOUT)
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
            self.broker.recover(0, [handle.consumer_id])
            self.broker.forget_consumer(handle.consumer_id)
