"""What the workflow view and resuming need beyond result rows: the outline of each applied
canvas, and the call a failed task was sent with (so what followed it can be sent again)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Workflow(models.Model):
    """The outline of one applied canvas (chain, group or chord), written once when it is applied.

    `key` is how a task row finds it: the canvas's root (a chain's first task, a group's or
    chord's header id). Tasks of nested canvases reach it through alias rows whose `root_key`
    names the row holding the outline."""

    key = models.CharField(max_length=255, unique=True)
    root_key = models.CharField(max_length=255, null=True, blank=True)
    outline = models.JSONField(null=True, blank=True, help_text="Nodes and ids as frozen when applied")
    date_created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-date_created"]

    def __str__(self) -> str:
        return f"workflow {self.key}" if self.root_key is None else f"alias {self.key} of {self.root_key}"


class FailedCall(models.Model):
    """How a task that failed was sent (name, arguments and every option, its chain, chord and
    links included), written on the failure path only, so it can be resumed."""

    task_id = models.CharField(max_length=255, unique=True)
    call = models.JSONField(help_text="task, args, kwargs and options of the failed attempt")
    date_created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-date_created"]

    def __str__(self) -> str:
        return f"failed call {self.task_id}"
