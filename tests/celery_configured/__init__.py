"""A settings package configured the Celery way, for workers started by tests/e2e/test_celery_app.py:
its settings module imports this package first, which makes the app and reads the CELERY_*
settings (as a project's proj/__init__.py importing proj/celery.py does)."""

from taskqueue import Celery

from . import receivers  # noqa: F401 - connects the signal receivers

app = Celery("configured")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
