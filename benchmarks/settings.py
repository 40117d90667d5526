"""Settings for benchmark runs: a throwaway PostgreSQL database and its own Redis key prefix."""

import os

from tests.settings import *  # noqa: F403 - same apps and tasks as the tests

BENCH_DB = os.environ.get("TASKQUEUE_BENCH_DB", "taskqueue_bench")
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": BENCH_DB, "USER": "postgres",
                         "HOST": "127.0.0.1", "PORT": "5432"}}
TASKQUEUE_KEY_PREFIX = f"tqbench-{os.getpid() if 'TASKQUEUE_BENCH_PREFIX' not in os.environ else ''}"
TASKQUEUE_KEY_PREFIX = os.environ.setdefault("TASKQUEUE_BENCH_PREFIX", TASKQUEUE_KEY_PREFIX)
TASKQUEUE_TRACK_STARTED = False
TASKQUEUE_VISIBILITY_TIMEOUT = 15
