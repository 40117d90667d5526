"""Django signals with Celery's names, for observing tasks and workers."""

from __future__ import annotations

from django.dispatch import Signal

before_task_publish = Signal()
after_task_publish = Signal()
task_prerun = Signal()
task_postrun = Signal()
task_success = Signal()
task_failure = Signal()
task_retry = Signal()
task_revoked = Signal()
worker_ready = Signal()
worker_shutdown = Signal()
