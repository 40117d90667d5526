"""System checks: catch a wrong taskqueue configuration at `manage.py check` time, not at run time."""

from __future__ import annotations

from django.core.checks import Error, Tags, Warning, register

from .conf import get_settings

_SCHEMES = ("django", "redis", "rediss", "unix")


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs) -> list:
    settings = get_settings()
    problems = []
    scheme = settings.BROKER_URL.split(":", 1)[0]
    if scheme not in _SCHEMES:
        problems.append(Error(f"TASKQUEUE_BROKER_URL has an unknown scheme {scheme!r}.",
                              hint="Use django:// (the database), redis://, rediss:// or unix://.",
                              id="taskqueue.E002"))
    elif scheme == "django":
        from django.db import connections

        alias = settings.BROKER_URL.split("://", 1)[1].strip("/") or "default"
        if alias not in connections:
            problems.append(Error(f"TASKQUEUE_BROKER_URL names the database {alias!r}, which is not in DATABASES.",
                                  id="taskqueue.E001"))
        elif connections[alias].vendor == "sqlite" and \
                connections[alias].settings_dict.get("OPTIONS", {}).get("transaction_mode") != "IMMEDIATE":
            problems.append(Warning(
                "The database broker on SQLite needs IMMEDIATE transactions when several processes share the file.",
                hint='Add "transaction_mode": "IMMEDIATE" (and a "timeout") to the database OPTIONS.',
                id="taskqueue.W002"))
    if settings.VISIBILITY_TIMEOUT <= settings.heartbeat_interval:
        problems.append(Error("TASKQUEUE_VISIBILITY_TIMEOUT must be longer than TASKQUEUE_HEARTBEAT_INTERVAL.",
                              hint="Leave HEARTBEAT_INTERVAL unset: it defaults to a fifth of the timeout.",
                              id="taskqueue.E003"))
    if settings.TASK_ALWAYS_EAGER:
        problems.append(Warning("TASKQUEUE_TASK_ALWAYS_EAGER is on: tasks run in the caller, not in workers.",
                                id="taskqueue.W001"))
    return problems
