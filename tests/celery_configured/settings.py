"""The test run's settings plus Celery-named ones that only `config_from_object` maps to ours."""

from tests.settings import *  # noqa: F403

CELERY_TASK_DEFAULT_QUEUE = "via-celery-conf"
CELERY_TASK_SOFT_TIME_LIMIT = 0.5
CELERY_TASK_ACKS_LATE = True  # accepted, without effect
CELERY_BEAT_SCHEDULE = {"configured-add": {"task": "tests.tasks.add", "schedule": 3600, "args": (1, 2)}}
