"""The payment-scoring story: orders, and the start and end of each scoring run."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Order(models.Model):
    """An order to score; only its `owner` (the demo site's account that placed it) sees it."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, related_name="+")
    customer = models.CharField(max_length=100, db_index=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    scoring_seconds = models.FloatField(help_text="How long scoring takes (the demo's stand-in for real work)")
    score_task_id = models.CharField(max_length=255, blank=True, default="")
    score = models.FloatField(null=True)
    scoring_started = models.FloatField(null=True, help_text="epoch seconds")
    scoring_finished = models.FloatField(null=True, help_text="epoch seconds")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]
