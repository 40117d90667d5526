"""Signal receivers of the configured workers: each records what it received in tests.models.Run
(label "<signal>|<details>"), so a test can read what the worker process saw."""

import os

from taskqueue import signals


def _record(signal: str, task_id: str | None = None, detail: str = "") -> None:
    from tests.models import Run  # waits for Django's app registry: this module loads with the settings

    Run.objects.create(label=f"{signal}|{detail}"[:100], task_id=task_id or "", pid=os.getpid())


def _name(sender) -> str:
    return getattr(sender, "name", sender)


@signals.task_prerun.connect
def on_prerun(sender=None, task_id=None, task=None, args=None, kwargs=None, **extra):
    _record("task_prerun", task_id, f"{task.name}|{list(args)}|{kwargs}|{task.request.id == task_id}")


@signals.task_postrun.connect
def on_postrun(sender=None, task_id=None, task=None, args=None, kwargs=None, retval=None, state=None, **extra):
    _record("task_postrun", task_id, f"{task.name}|{state}|{retval!r}")


@signals.task_success.connect
def on_success(sender=None, result=None, **extra):
    _record("task_success", sender.request.id, f"{sender.name}|{result!r}")


@signals.task_failure.connect
def on_failure(sender=None, task_id=None, exception=None, args=None, kwargs=None, traceback=None, einfo=None,
               **extra):
    _record("task_failure", task_id,
            f"{sender.name}|{type(exception).__name__}|{list(args)}|{traceback is not None}|{einfo is not None}")


@signals.task_retry.connect
def on_retry(sender=None, request=None, reason=None, einfo=None, **extra):
    _record("task_retry", request.id, f"{sender.name}|{type(reason).__name__}|{type(reason.exc).__name__}|"
                                      f"{request.retries}|{einfo is not None}")


@signals.task_revoked.connect
def on_revoked(sender=None, request=None, terminated=None, signum=None, expired=None, **extra):
    _record("task_revoked", request.id, f"{_name(sender)}|{terminated}|{expired}|{signum}")


@signals.worker_init.connect
def on_worker_init(sender=None, **extra):
    _record("worker_init")


@signals.worker_process_init.connect
def on_worker_process_init(sender=None, **extra):
    _record("worker_process_init")


@signals.worker_ready.connect
def on_worker_ready(sender=None, **extra):
    _record("worker_ready")


@signals.worker_shutdown.connect
def on_worker_shutdown(sender=None, **extra):
    _record("worker_shutdown")
