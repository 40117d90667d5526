"""Django settings of taskqueue's benchmark workers and client: one app, as Celery's are.

Like benchmarks/peers/celery_settings.py, nothing else is installed (no admin, no demo apps), so
worker memory is compared on equal terms. Results go to a throwaway PostgreSQL database (or, for
`taskqueue-sqlite`, a SQLite file); the Redis broker uses its own key prefix, the RabbitMQ one
(`taskqueue-amqp`) its own vhost, the database broker (`taskqueue-db`, `taskqueue-sqlite`) the
results database.
"""

import os

SECRET_KEY = "bench-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["taskqueue", "benchmarks"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql",
                         "NAME": os.environ.get("TASKQUEUE_BENCH_DB", "bench_taskqueue"),
                         "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432"}}
if os.environ.get("TASKQUEUE_BENCH_SQLITE"):  # taskqueue-sqlite: broker and results in one SQLite file
    # as docs/brokers.md tells users to set it up (SQLite's default synchronous=FULL is kept)
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["TASKQUEUE_BENCH_SQLITE"],
                             "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE",
                                         "init_command": "PRAGMA journal_mode=WAL;"}}}
# Redis DB 13 for `taskqueue`, a throwaway RabbitMQ vhost for `taskqueue-amqp` (set by the adapter).
TASKQUEUE_BROKER_URL = os.environ.get("TASKQUEUE_BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
TASKQUEUE_KEY_PREFIX = os.environ.setdefault("TASKQUEUE_BENCH_PREFIX", f"tqbench-{os.getpid()}")
TASKQUEUE_TRACK_STARTED = False
TASKQUEUE_VISIBILITY_TIMEOUT = 15
