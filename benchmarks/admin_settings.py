"""Django settings of the admin-scale benchmark: the admin and taskqueue on a throwaway PostgreSQL
database (named by TASKQUEUE_BENCH_DB), the Redis broker on the benchmarks' DB with its own prefix."""

import os

SECRET_KEY = "bench-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                  "django.contrib.sessions", "django.contrib.messages", "taskqueue"]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware",
              "django.contrib.messages.middleware.MessageMiddleware"]
ROOT_URLCONF = "benchmarks.admin_urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
              "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                 "django.contrib.auth.context_processors.auth",
                                                 "django.contrib.messages.context_processors.messages"]}}]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql",
                         "NAME": os.environ.get("TASKQUEUE_BENCH_DB", "bench_admin"),
                         "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432"}}
TASKQUEUE_BROKER_URL = os.environ.get("TASKQUEUE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
TASKQUEUE_KEY_PREFIX = os.environ.setdefault("TASKQUEUE_BENCH_PREFIX", f"tqbench-admin-{os.getpid()}")
STATIC_URL = "static/"
SILENCED_SYSTEM_CHECKS = ["taskqueue.W003"]
