"""The project's settings: the test run's (databases, Redis, key prefix: test glue), then the
project's own apps and Celery settings, as they were before the port."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "shop", "notifications"]  # noqa: F405

# Celery
CELERY_BROKER_URL = TASKQUEUE_BROKER_URL  # noqa: F405 - the test run's broker
CELERY_RESULT_BACKEND = "django-db"
CELERY_TASK_DEFAULT_QUEUE = "proj"
CELERY_TASK_ROUTES = {"notifications.tasks.*": {"queue": "proj-mail"}}
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 2
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {
    "audit-every-hour": {"task": "shop.tasks.audit", "schedule": 3600.0, "args": ("hourly",)},
}
