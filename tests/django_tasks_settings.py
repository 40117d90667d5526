"""The test run's settings for a worker that also runs the django.tasks tasks of tests/djtasks.py."""

from tests.settings import *  # noqa: F403

TASKQUEUE_IMPORTS = ("tests.djtasks",)
