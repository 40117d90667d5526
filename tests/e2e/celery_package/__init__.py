"""A package whose tasks module `app.autodiscover_tasks(["tests.e2e.celery_package"])` imports."""
