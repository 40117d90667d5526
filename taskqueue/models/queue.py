"""Queue-side models: dead letters, and the tables of the database broker."""

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


class OutboxMessage(models.Model):
    """A message sent inside a transaction, written in that transaction: deleted once the broker
    has it after the commit, or published later by a worker if the broker was down then."""

    key = models.CharField(max_length=255)
    queue = models.CharField(max_length=255)
    body = models.TextField()
    eta = models.FloatField(null=True, blank=True, help_text="Epoch seconds; empty for now")
    priority = models.IntegerField(default=0)
    date_created = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.key} for {self.queue}"


class QueuedMessage(models.Model):
    """A message of the database broker (TASKQUEUE_BROKER_URL = "django://")."""

    key = models.CharField(max_length=255, unique=True)
    task_id = models.CharField(max_length=255, db_index=True)
    queue = models.CharField(max_length=255)
    body = models.TextField()
    priority = models.IntegerField(default=0)
    available_at = models.DateTimeField()
    # Taken lowest first: when it became ready (epoch seconds), less priority x TASKQUEUE_PRIORITY_AGING.
    rank = models.FloatField(default=0.0)
    consumer_id = models.CharField(max_length=255, null=True, blank=True)
    claim = models.CharField(max_length=64, null=True, blank=True)  # set only by SQLite before 3.35 (no RETURNING)
    reserved_at = models.DateTimeField(null=True, blank=True)
    redeliveries = models.PositiveIntegerField(default=0)
    date_created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["queue", "rank", "id"], name="tq_queued_ranked",
                         condition=models.Q(consumer_id__isnull=True)),
            # Held messages only: a publish adds no entry to these (one b-tree write fewer each).
            models.Index(fields=["consumer_id"], name="tq_queued_held", condition=models.Q(consumer_id__isnull=False)),
            models.Index(fields=["claim"], name="tq_queued_claimed", condition=models.Q(claim__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.key} on {self.queue}"


class BrokerConsumer(models.Model):
    """The lease of one consumer of the database broker: its messages are its own while fresh. On
    RabbitMQ, which cannot be asked, also what the consumer holds, for the operator's pages."""

    consumer_id = models.CharField(max_length=255, primary_key=True)
    last_heartbeat = models.DateTimeField(db_index=True)
    holding = models.JSONField(default=list, blank=True, help_text="RabbitMQ broker: [queue, key] pairs held")


class CancelledTask(models.Model):
    """A revoked task id: the database broker never hands its messages out."""

    task_id = models.CharField(max_length=255, primary_key=True)
    expires_at = models.DateTimeField(db_index=True)
    signal = models.CharField(max_length=16, blank=True, default="",
                              help_text="revoke(terminate=True): the signal that stops it where it runs")


class TaskLock(models.Model):
    """A lock_key mutex of the database broker, owned by a consumer while its lease is fresh."""

    name = models.CharField(max_length=255, primary_key=True)
    owner = models.CharField(max_length=255)


class RateLimit(models.Model):
    """The token bucket of a task name's `rate_limit`, shared by every worker; its `rate` overrides
    the task's own and can be changed while workers run (the admin, `app.control.rate_limit`)."""

    task_name = models.CharField(max_length=255, primary_key=True)
    rate = models.CharField(max_length=32, blank=True, default="",
                            help_text='"10/s", "100/m", "1000/h", a number per second, "0" for no limit; '
                                      "empty: the task's own rate_limit")
    tokens = models.FloatField(default=1.0)
    refilled_at = models.FloatField(default=0.0)  # epoch seconds

    def __str__(self) -> str:
        return f"{self.task_name}: {self.rate or 'its own rate'}"
