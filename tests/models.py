"""Rows the fixture tasks write, so tests can check what ran, where and when."""

from django.db import models


class Run(models.Model):
    """One execution of a fixture task."""

    label = models.CharField(max_length=100, db_index=True)
    task_id = models.CharField(max_length=255, blank=True, default="")
    pid = models.IntegerField(default=0)
    started = models.FloatField(default=0)
    finished = models.FloatField(null=True)
