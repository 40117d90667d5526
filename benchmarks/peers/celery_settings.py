"""Django settings for the Celery workers whose results go to django-celery-results (`django-db`).

Each Celery variant gets its own throwaway PostgreSQL database (BENCH_CELERY_DB), migrated by the
benchmark driver. Nothing from taskqueue is installed here.
"""

import os

SECRET_KEY = "bench-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django_celery_results"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql",
                         "NAME": os.environ.get("BENCH_CELERY_DB", "bench_celery"),
                         "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432"}}
