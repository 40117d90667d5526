"""What an operator asked of this consumer's worker, from the admin: queues paused, and a warm
shutdown. Read from the results database every few seconds (not per batch), like the rates of
`ratelimits`: nothing is added to the broker or to the enqueue path."""

from __future__ import annotations

import logging
import os
import signal
import time

from ..models import PausedQueue, WorkerRecord
from ..outages import drop_broken_connections, is_outage

logger = logging.getLogger("taskqueue.worker")
READ_EVERY = 2.0  # seconds: how soon a pause, a resume or a shutdown request is obeyed


def worker_key(consumer_id: str) -> str:
    """The worker a consumer belongs to: "<hostname>.<instance>" of "<hostname>.<instance>.<n>"."""
    return consumer_id.rsplit(".", 1)[0]


class Controls:
    """The queues a consumer may reserve from now, and the warm shutdown its worker was asked for."""

    def __init__(self, consumer_id: str, queues: list[str]):
        self.worker = worker_key(consumer_id)
        self.queues = queues
        self.active = list(queues)
        self._next_read = 0.0

    def active_queues(self) -> list[str]:
        """The queues not paused, as last read (at most READ_EVERY seconds ago)."""
        now = time.monotonic()
        if now >= self._next_read:
            self._next_read = now + READ_EVERY
            try:
                self._read()
            except Exception as exc:  # the database is down: keep obeying what was last read
                if not is_outage(exc):
                    raise
                drop_broken_connections()
        return self.active

    def _read(self) -> None:
        paused = set(PausedQueue.objects.filter(queue__in=self.queues).values_list("queue", flat=True))
        self.active = [queue for queue in self.queues if queue not in paused]
        asked = WorkerRecord.objects.filter(key=self.worker, shutdown_requested_at__isnull=False,
                                            shutdown_signalled=False).values_list("pid", flat=True).first()
        # One consumer of the worker claims the request, so the supervisor gets one SIGTERM (a
        # second would be a cold shutdown). It runs on the supervisor's host, so the pid is valid.
        if asked is not None and WorkerRecord.objects.filter(key=self.worker, shutdown_signalled=False).update(
                shutdown_signalled=True):
            logger.warning("Warm shutdown asked from the admin: signalling the worker (pid %d)", asked)
            os.kill(asked, signal.SIGTERM)


def record_worker(hostname: str, instance: str, queues: list[str], concurrency: int, pool: str) -> None:
    """Write the record of this worker run (the admin's workers page reads it beside the leases).
    The supervisor keeps this pid: the keeper is exec'd in place of runworker."""
    try:
        WorkerRecord.objects.update_or_create(key=f"{hostname}.{instance}", defaults={
            "hostname": hostname, "pid": os.getpid(), "queues": list(queues), "concurrency": concurrency,
            "pool": pool})
    except Exception as exc:  # the worker runs without it: the page then shows what its leases tell
        logger.warning("Could not record this worker for the admin's workers page: %s", exc)
