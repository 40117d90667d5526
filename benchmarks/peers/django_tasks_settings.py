"""Django settings for the django-tasks-db peers: Django's tasks framework (`django.tasks`, Django 6)
with django-tasks-db's `DatabaseBackend`, the only app installed.

``django-tasks-db`` stores its queue and results in a throwaway PostgreSQL database
(BENCH_DJANGO_TASKS_DB); ``django-tasks-db-sqlite`` in one SQLite file (BENCH_DJANGO_TASKS_SQLITE).
Connections are persistent (CONN_MAX_AGE=None): `db_worker` calls `close_old_connections()` around
every poll, which with Django's default (0) would reconnect to PostgreSQL each time.
"""

import os

SECRET_KEY = "bench-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django_tasks_db"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
if os.environ.get("BENCH_DJANGO_TASKS_SQLITE"):
    # WAL (as taskqueue and SqliteHuey use): readers do not wait for the writer; 20 s busy timeout.
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["BENCH_DJANGO_TASKS_SQLITE"],
                             "CONN_MAX_AGE": None,
                             "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=wal;"}}}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql",
                             "NAME": os.environ.get("BENCH_DJANGO_TASKS_DB", "bench_django_tasks"),
                             "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432", "CONN_MAX_AGE": None}}
