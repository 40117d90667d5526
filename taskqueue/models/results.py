"""TaskResult: one row per task id, the source of truth for state and result."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import models
from django.utils import timezone

from .. import states


class TaskResultQuerySet(models.QuerySet["TaskResult"]):
    def ready(self) -> TaskResultQuerySet:
        return self.filter(state__in=states.READY_STATES)

    def failed(self) -> TaskResultQuerySet:
        return self.filter(state=states.FAILURE)

    def expired(self, older_than) -> TaskResultQuerySet:
        return self.ready().filter(date_done__lt=timezone.now() - older_than)


class TaskResult(models.Model):
    """State, arguments, result or exception of one task (updated across retries)."""

    task_id = models.CharField(max_length=255)
    task_name = models.CharField(max_length=255, blank=True, default="")
    state = models.CharField(max_length=50, default=states.PENDING)
    args = models.JSONField(null=True, blank=True)
    kwargs = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True, help_text="Return value, or the exception when failed")
    traceback = models.TextField(null=True, blank=True)
    meta = models.JSONField(null=True, blank=True, help_text="Custom state metadata (update_state)")
    retries = models.PositiveIntegerField(default=0)
    queue = models.CharField(max_length=255, blank=True, default="")
    worker = models.CharField(max_length=255, blank=True, default="")
    parent_id = models.CharField(max_length=255, null=True, blank=True)
    root_id = models.CharField(max_length=255, null=True, blank=True)
    group_id = models.CharField(max_length=255, null=True, blank=True)
    date_created = models.DateTimeField(default=timezone.now)
    date_started = models.DateTimeField(null=True, blank=True)
    date_done = models.DateTimeField(null=True, blank=True)

    objects = TaskResultQuerySet.as_manager()

    class Meta:
        ordering = ["-date_created"]
        # Every index is paid for on each stored result, so only what queries need: no LIKE twins, and
        # partial ones for lineage ids.
        # The admin's filters (task, queue, worker) each have an index led by the column and ordered like
        # the list; the task id's unique index compares bytes on PostgreSQL, so a search by id prefix uses it.
        constraints = [models.UniqueConstraint(fields=["task_id"], name="tq_result_task_id_prefix",
                                               opclasses=["varchar_pattern_ops"])]
        indexes = [
            models.Index(fields=["state", "date_done"], name="tq_result_state_done"),
            models.Index(fields=["date_created"], name="tq_result_created"),
            models.Index(fields=["task_name", "date_created"], name="tq_result_name_created"),
            models.Index(fields=["queue", "date_created"], name="tq_result_queue_created"),
            models.Index(fields=["worker", "date_created"], name="tq_result_worker_created"),
            models.Index(fields=["group_id"], name="tq_result_group", condition=models.Q(group_id__isnull=False)),
            models.Index(fields=["parent_id"], name="tq_result_parent", condition=models.Q(parent_id__isnull=False)),
            models.Index(fields=["root_id"], name="tq_result_root", condition=models.Q(root_id__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.task_name or 'task'} {self.task_id} [{self.state}]"


class Dashboard(TaskResult):
    """No table of its own: the admin's throughput and failure dashboard, listed on the admin index."""

    class Meta:
        proxy = True
        verbose_name = verbose_name_plural = "dashboard"


class GroupResult(models.Model):
    """The members of a group, in definition order (saved for every group and chord header)."""

    group_id = models.CharField(max_length=255, unique=True)
    member_ids = models.JSONField(default=list, help_text="Result tuples of the members, in order")
    date_created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-date_created"]

    def __str__(self) -> str:
        return f"group {self.group_id} ({len(self.member_ids)} members)"


class ChordCounterQuerySet(models.QuerySet["ChordCounter"]):
    def lock(self, group_id: str) -> bool:
        """Take the counter's row lock (the write lock on SQLite) for this transaction, so members
        of one chord are counted one at a time; False when there is no such chord."""
        return bool(self.filter(group_id=group_id).update(remaining=models.F("remaining")))

    def count_finished(self, group_id: str, finished: int, failed_task_ids: Sequence[str] = ()) -> None:
        """Count `finished` members, `failed_task_ids` among them: the first failed one resolves the
        chord as failed. Callers count each member once (see `count_failed`)."""
        counter = self.filter(group_id=group_id).first()
        if counter is not None:
            counter.counted(finished, failed_task_ids)

    def count_failed(self, group_id: str, task_id: str) -> None:
        """Count a member that will never succeed, unless it was counted as failed already (a revoke
        and then the worker that meets the revoked message; a failed chain redelivered)."""
        counter = self.filter(group_id=group_id).first()
        if counter is not None and not counter.failed_members.filter(task_id=task_id).exists():
            counter.counted(1, [task_id])

    def create(self, **fields: Any):
        """A counter and its plan (`member_ids` and `body`, in a row of their own)."""
        member_ids, body = fields.pop("member_ids", None) or [], fields.pop("body", None) or {}
        counter = super().create(**fields)
        counter.plan = ChordPlan.objects.using(self.db).create(counter=counter, member_ids=member_ids, body=body)
        return counter


class ChordCounter(models.Model):
    """A chord waiting for its header: `remaining` falls as members finish; the last one sends the body."""

    PENDING, SUCCESS, FAILURE = "PENDING", "SUCCESS", "FAILURE"

    group_id = models.CharField(max_length=255, unique=True)
    total = models.PositiveIntegerField()
    remaining = models.PositiveIntegerField()
    state = models.CharField(max_length=20, default=PENDING, db_index=True)
    failed_task_id = models.CharField(max_length=255, null=True, blank=True)
    body_sent = models.BooleanField(default=False)
    date_created = models.DateTimeField(default=timezone.now, db_index=True)
    date_done = models.DateTimeField(null=True, blank=True)

    objects = ChordCounterQuerySet.as_manager()

    class Meta:
        ordering = ["-date_created"]

    def counted(self, finished: int, failed_task_ids: Sequence[str] = ()) -> None:
        self.remaining = max(0, self.remaining - finished)
        if failed_task_ids:
            ChordFailedMember.objects.using(self._state.db).bulk_create(
                [ChordFailedMember(counter=self, task_id=task_id) for task_id in failed_task_ids],
                ignore_conflicts=True)
        if self.state == self.PENDING and (failed_task_ids or self.remaining == 0):
            self.state = self.FAILURE if failed_task_ids else self.SUCCESS
            self.failed_task_id = failed_task_ids[0] if failed_task_ids else None
            self.date_done = timezone.now()
        self.save(update_fields=["remaining", "state", "failed_task_id", "date_done"])

    def claim(self) -> bool:
        """Whether this caller is the one that sends (or fails) the body: true once per resolution
        of the chord, and only while it is still resolved as this copy read it (a resume may have
        reopened it since: a stale claim must not fail it again)."""
        return bool(ChordCounter.objects.filter(pk=self.pk, body_sent=False, state=self.state,
                                                failed_task_id=self.failed_task_id).update(body_sent=True))

    @property
    def member_ids(self) -> list[str]:
        """Task ids whose results the body receives, in order (read from the plan once)."""
        return self.plan.member_ids

    @property
    def body(self) -> dict:
        return self.plan.body

    def __str__(self) -> str:
        return f"chord {self.group_id} [{self.state}, {self.remaining}/{self.total} left]"


class ChordFailedMember(models.Model):
    """A member counted as failed (failed, revoked or never run): a member is met as failed more
    than once (a revoke, then the worker that meets its message; a failed chain redelivered), and
    counting it again would leave `remaining` short, so a resumed chord would send its body while a
    member still runs. A resume of the member deletes its row."""

    counter = models.ForeignKey(ChordCounter, on_delete=models.CASCADE, related_name="failed_members")
    task_id = models.CharField(max_length=255)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["counter", "task_id"], name="tq_chord_failed_member")]

    def __str__(self) -> str:
        return f"{self.task_id} failed in {self.counter_id}"


class ChordPlan(models.Model):
    """What a chord sends once its header is done: the member ids, in the order the body receives
    their results, and the body. A row apart from its counter: counting members rewrites only the
    small counter row (SQLite rewrites a whole row on any update: megabytes for 100,000 ids)."""

    counter = models.OneToOneField(ChordCounter, on_delete=models.CASCADE, primary_key=True, related_name="plan")
    member_ids = models.JSONField(help_text="Task ids whose results the body receives, in order")
    body = models.JSONField(help_text="The body signature")

    def __str__(self) -> str:
        return f"plan of {self.counter_id}"
