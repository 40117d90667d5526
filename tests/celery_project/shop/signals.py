"""Receivers of the project's signals. They record what they see in tests.models.Run (test glue:
a real project would log or update its own models)."""

import os

from taskqueue.signals import (
    after_task_publish,
    before_task_publish,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_revoked,
    task_success,
    worker_ready,
    worker_shutdown,
)
from tests.models import Run


def _record(signal, task_id="", detail=""):
    Run.objects.create(label=f"{signal}|{detail}"[:100], task_id=task_id or "", pid=os.getpid())


@before_task_publish.connect
def on_before_publish(sender=None, headers=None, body=None, routing_key=None, **kwargs):
    if sender.startswith(("shop.", "notifications.")):
        _record("before_task_publish", headers["id"], f"{sender}|{routing_key}|{body[0]}")


@after_task_publish.connect
def on_after_publish(sender=None, body=None, routing_key=None, exchange=None, **kwargs):
    if sender.startswith(("shop.", "notifications.")):
        _record("after_task_publish", "", f"{sender}|{routing_key}|{body[0]}")


@task_prerun.connect
def on_prerun(sender=None, task_id=None, task=None, args=None, kwargs=None, **extra):
    _record("task_prerun", task_id, f"{task.name}|{list(args)}|{task.request.id == task_id}")


@task_postrun.connect
def on_postrun(sender=None, task_id=None, task=None, args=None, kwargs=None, retval=None, state=None, **extra):
    _record("task_postrun", task_id, f"{task.name}|{state}|{retval!r}")


@task_success.connect
def on_success(sender=None, result=None, **kwargs):
    _record("task_success", sender.request.id, f"{sender.name}|{result!r}")


@task_failure.connect
def on_failure(sender=None, task_id=None, exception=None, args=None, kwargs=None, traceback=None, einfo=None,
               **extra):
    _record("task_failure", task_id, f"{sender.name}|{type(exception).__name__}|{einfo is not None}")


@task_retry.connect
def on_retry(sender=None, request=None, reason=None, einfo=None, **kwargs):
    _record("task_retry", request.id, f"{sender.name}|{type(reason.exc).__name__}|{request.retries}")


@task_revoked.connect
def on_revoked(sender=None, request=None, terminated=None, signum=None, expired=None, **kwargs):
    _record("task_revoked", request.id, f"{getattr(sender, 'name', sender)}|{terminated}|{expired}")


@worker_ready.connect
def on_worker_ready(sender=None, **kwargs):
    _record("worker_ready")


@worker_shutdown.connect
def on_worker_shutdown(sender=None, **kwargs):
    _record("worker_shutdown")
