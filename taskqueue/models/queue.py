"""DeadLetter: messages a worker refused (bad signature, malformed, unknown task), kept with the reason."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class DeadLetter(models.Model):
    """A message that could not be run, kept so an operator can see why."""

    message_id = models.CharField(max_length=255, null=True, blank=True, db_index=True)
    task_name = models.CharField(max_length=255, blank=True, default="")
    queue = models.CharField(max_length=255, blank=True, default="", db_index=True)
    reason = models.TextField()
    body = models.TextField(help_text="The raw message as received")
    worker = models.CharField(max_length=255, blank=True, default="")
    date_received = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-date_received"]

    def __str__(self) -> str:
        return f"{self.message_id or 'message'}: {self.reason[:60]}"
