"""Settings for taskqueue's own tests: PostgreSQL by default, SQLite with DATABASE_URL=sqlite:///..."""

import os
import uuid

import environ

env = environ.Env()
# One id per test run, inherited by the worker subprocesses: it names the Redis key prefix and databases.
RUN_ID = os.environ.setdefault("TASKQUEUE_TEST_RUN_ID", uuid.uuid4().hex[:10])

SECRET_KEY = "tests-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",  # the admin's CSS in the browser tests (live_server serves it)
    "taskqueue",
    "tests",
    "demo_project.demo",
    "demo_project.logins",
    "demo_project.payments",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [os.path.join(os.path.dirname(os.path.dirname(__file__)), "demo_project", "templates")],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/taskqueue")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not :memory:, so worker subprocesses share it; WAL lets readers and the writer overlap.
    DATABASES["default"]["TEST"] = {"NAME": f"/tmp/taskqueue_test_{RUN_ID}.sqlite3"}
    # IMMEDIATE: a transaction takes the write lock when it begins, so two processes never
    # deadlock upgrading a read to a write (the busy timeout then applies).
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE",
                                       "init_command": "PRAGMA journal_mode=WAL;"}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_taskqueue_{RUN_ID}"}

# TASKQUEUE_TEST_BROKER=django runs everything on the database broker, =amqp on RabbitMQ; the
# default is Redis.
REDIS_URL = env("TASKQUEUE_TEST_REDIS_URL", default="redis://127.0.0.1:6379/11")
# A vhost of this run's own (tests/conftest.py makes it and deletes it), inherited by its workers.
AMQP_VHOST = os.environ.setdefault("TASKQUEUE_TEST_AMQP_VHOST", f"taskqueue-tests-{RUN_ID}")
# A long connect timeout: CI runs its lanes side by side, and RabbitMQ may answer slowly then.
AMQP_URL = env("TASKQUEUE_TEST_AMQP_URL", default=f"amqp://guest:guest@127.0.0.1:5672/{AMQP_VHOST}?connect_timeout=20")
TASKQUEUE_BROKER_URL = {"django": "django://", "amqp": AMQP_URL}.get(env("TASKQUEUE_TEST_BROKER", default="redis"),
                                                                     REDIS_URL)
TASKQUEUE_KEY_PREFIX = f"tqtest-{RUN_ID}"
TASKQUEUE_VISIBILITY_TIMEOUT = float(os.environ.get("TASKQUEUE_VISIBILITY_TIMEOUT", "3"))
# A fault test against a paused Redis sets it lower for its worker: each try waits out this timeout.
TASKQUEUE_BROKER_TIMEOUT = float(os.environ.get("TASKQUEUE_BROKER_TIMEOUT", "5"))
TASKQUEUE_TRACK_STARTED = True
# Longer than a publish to a stopped Redis takes here, so no worker relays a row its sender still handles.
TASKQUEUE_OUTBOX_RELAY_AFTER = float(os.environ.get("TASKQUEUE_OUTBOX_RELAY_AFTER", "3"))
# The demo's tasks go to their own queue here, away from the shared test worker.
TASKQUEUE_ROUTES = {"demo_project.logins.*": {"queue": "demo-logins"}}
DEMO_RISK_API_URL = env("DEMO_RISK_API_URL", default="http://127.0.0.1:8000/risk-api/score")
DEMO_RISK_API_TIMEOUT = 2.0
DEMO_SCORING_SECONDS = 0.5
STATIC_URL = "static/"

# django.tasks (Django 6+) on taskqueue: tests/e2e/test_django_tasks.py
TASKS = {"default": {"BACKEND": "taskqueue.backends.TaskQueueBackend", "QUEUES": ["django-tasks", "django-tasks-2"]}}
