"""A task module named by `include=[...]` / `imports`, imported by the app (tests/e2e/test_celery_app.py)."""

from taskqueue import shared_task


@shared_task
def included_task():
    return "included"
