"""What operators set from the admin and workers obey: paused queues, and each worker's record
(how it runs, and a warm shutdown asked for). Consumers re-read both every few seconds."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class PausedQueue(models.Model):
    """A queue no consumer reserves from until the row is deleted (messages keep arriving)."""

    queue = models.CharField(max_length=255, primary_key=True)
    paused_at = models.DateTimeField(default=timezone.now)
    paused_by = models.CharField(max_length=150, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.queue} (paused)"


class WorkerRecord(models.Model):
    """One run of `runworker`: written when it starts; its liveness is its consumers' leases.

    `key` is "<hostname>.<instance>", the prefix of its consumer ids ("<hostname>.<instance>.<n>")."""

    key = models.CharField(max_length=255, primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    queues = models.JSONField(default=list)
    concurrency = models.PositiveIntegerField(default=1)
    pool = models.CharField(max_length=16, default="prefork")
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    shutdown_requested_at = models.DateTimeField(null=True, blank=True)
    shutdown_requested_by = models.CharField(max_length=150, blank=True, default="")
    shutdown_signalled = models.BooleanField(default=False)  # a consumer passed the request to the supervisor

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "worker"

    def __str__(self) -> str:
        return self.key


class Queue(PausedQueue):
    """The admin's queues page (a proxy: queues live in the broker; the table holds the paused ones)."""

    class Meta:
        proxy = True
        verbose_name = "queue"
        verbose_name_plural = "queues"
