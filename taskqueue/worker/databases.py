"""Point a worker at the databases of the test run that started it (see taskqueue.testing)."""

from __future__ import annotations

import json
import os

OVERRIDE_ENV = "TASKQUEUE_WORKER_DATABASE_NAMES"


def database_names() -> dict[str, str]:
    """The names the test run's connections use (pytest-django points them at test databases)."""
    from django.db import connections

    return {alias: str(connections[alias].settings_dict["NAME"]) for alias in connections}


def apply_database_override() -> None:
    """In a worker started by `start_worker`: use the test databases of the process that started it."""
    names = os.environ.get(OVERRIDE_ENV)
    if not names:
        return
    from django.conf import settings
    from django.db import connections

    for alias, name in json.loads(names).items():
        connections[alias].close()
        connections[alias].settings_dict["NAME"] = name
        settings.DATABASES[alias]["NAME"] = name
