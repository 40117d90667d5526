"""A settings package configured the Celery way, for workers started by tests/e2e/test_celery_app.py:
its settings module imports this package first, which makes the app and reads the CELERY_*
settings (as a project's proj/__init__.py importing proj/celery.py does)."""

from taskqueue import Celery

from . import receivers  # noqa: F401 - connects the signal receivers

app = Celery("configured")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def setup_periodic_tasks(sender, **kwargs):
    from taskqueue.schedules import crontab
    from tests.tasks import add

    sender.add_periodic_task(600.0, add.s(2, 3), name="added in code")
    sender.add_periodic_task(crontab(minute=0, hour=7), add.s(5), kwargs={"y": 5})
