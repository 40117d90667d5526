"""The new-device-login story: logins, known devices, notifications, risk verdicts, errors."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Device(models.Model):
    user = models.CharField(max_length=100)
    name = models.CharField(max_length=100)
    first_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        unique_together = [("user", "name")]


class Login(models.Model):
    """One login; `steps` holds the task ids of its workflow, in order, for the status page. Only
    its `owner` (the demo site's account that made it) sees it."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, related_name="+")
    user = models.CharField(max_length=100, db_index=True)
    device = models.CharField(max_length=100)
    created = models.DateTimeField(default=timezone.now)
    new_device = models.BooleanField(null=True)
    notified = models.BooleanField(default=False)
    event_saved = models.BooleanField(default=False)
    steps = models.JSONField(default=list)

    class Meta:
        ordering = ["-created"]


class RiskVerdict(models.Model):
    login = models.OneToOneField(Login, on_delete=models.CASCADE, related_name="verdict")
    verdict = models.CharField(max_length=20)
    score = models.FloatField()


class WorkflowError(models.Model):
    """Written by the error callbacks: which level saw which failed task."""

    login = models.ForeignKey(Login, on_delete=models.CASCADE, related_name="errors")
    level = models.CharField(max_length=20)  # task, group or chain
    task_id = models.CharField(max_length=255)
    created = models.DateTimeField(default=timezone.now)


class RiskApiControl(models.Model):
    """How the demo's own risk API behaves next: fail N times, fail always, or be slow."""

    fail_next = models.PositiveIntegerField(default=0)
    fail_always = models.BooleanField(default=False)
    delay = models.FloatField(default=0.0)
    calls = models.PositiveIntegerField(default=0)

    @classmethod
    def current(cls) -> "RiskApiControl":
        return cls.objects.get_or_create(pk=1)[0]
