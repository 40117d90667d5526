"""App and settings modules of the systems taskqueue is compared with (Celery, Huey, Dramatiq)."""
