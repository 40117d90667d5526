"""System checks: catch a wrong taskqueue configuration at `manage.py check` time, not at run time."""

from __future__ import annotations

from django.core.checks import Error, Tags, Warning, register

from .conf import get_settings

_SCHEMES = ("redis", "rediss", "unix")


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs) -> list:
    settings = get_settings()
    problems = []
    scheme = settings.BROKER_URL.split(":", 1)[0]
    if scheme == "django":
        problems.append(Error(
            "TASKQUEUE_BROKER_URL is 'django://', the database broker, which this version does not ship yet.",
            hint="Set TASKQUEUE_BROKER_URL = 'redis://127.0.0.1:6379/0' (or your Redis URL).",
            id="taskqueue.E001"))
    elif scheme not in _SCHEMES:
        problems.append(Error(f"TASKQUEUE_BROKER_URL has an unknown scheme {scheme!r}.",
                              hint="Use redis://, rediss:// or unix://.", id="taskqueue.E002"))
    if settings.VISIBILITY_TIMEOUT <= settings.heartbeat_interval:
        problems.append(Error("TASKQUEUE_VISIBILITY_TIMEOUT must be longer than TASKQUEUE_HEARTBEAT_INTERVAL.",
                              hint="Leave HEARTBEAT_INTERVAL unset: it defaults to a fifth of the timeout.",
                              id="taskqueue.E003"))
    if settings.TASK_ALWAYS_EAGER:
        problems.append(Warning("TASKQUEUE_TASK_ALWAYS_EAGER is on: tasks run in the caller, not in workers.",
                                id="taskqueue.W001"))
    return problems
