"""The only reader of Django settings: every TASKQUEUE_* setting, typed, with its default.

The app object (`app.conf.update`, attribute assignment, `config_from_object`) adds *layers* on
top of the Django settings: each layer gives values by field name (`DEFAULT_QUEUE`, ...), the
later layer winning. A layer is a dict or a function read when the settings are next computed
(so `config_from_object("django.conf:settings")` may be called before Django's settings are
loaded). Layers are per process: call them before workers start, in the module that defines the
app (`proj/celery.py`), which the worker imports with the Django settings.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import timedelta
from functools import cached_property
from typing import Any

from django.conf import settings as django_settings


@dataclass(frozen=True)
class Settings:
    """Typed view of the TASKQUEUE_* settings; read with `get_settings()`."""

    BROKER_URL: str = "django://"
    DEFAULT_QUEUE: str = "default"
    ROUTES: dict | None = None
    RESULT_EXPIRES: Any = timedelta(days=1)
    TASK_ALWAYS_EAGER: bool = False
    TASK_EAGER_PROPAGATES: bool = False
    ENQUEUE_ON_COMMIT: bool = True
    KEY_PREFIX: str = "taskqueue"
    # A consumer whose heartbeat is older than this loses its in-flight messages to other workers.
    VISIBILITY_TIMEOUT: float = 15.0
    HEARTBEAT_INTERVAL: float | None = None  # default: a fifth of VISIBILITY_TIMEOUT
    SIGNING_KEY: str | None = None
    TRACK_STARTED: bool = False
    PREFETCH: int = 32
    LOCK_RETRY_DELAY: float = 0.05
    # Priorities (0-9, higher first): a message of priority p is served as if it had been ready p times
    # this many seconds earlier, so a low priority still runs under a steady flow of high ones.
    PRIORITY_AGING: float = 60.0
    MAX_REDELIVERIES: int = 5
    # Seconds a broker command may take: a server that accepts but never answers fails the call
    # (a delay(), say) after this long instead of hanging it. Above the 1 s that blocking reads wait.
    BROKER_TIMEOUT: float = 5.0
    # A delay() inside atomic() also writes its message to the outbox table in that transaction, so
    # a broker that is down at commit loses nothing: workers publish what is older than RELAY_AFTER s
    # (longer than a publish can take, BROKER_TIMEOUT and its retries, so the sender is done with it).
    OUTBOX: bool = True
    OUTBOX_RELAY_AFTER: float = 15.0
    PREPARED_STATEMENTS: bool = True  # PostgreSQL: the result write prepared once per connection
    # A prefork worker on redis:// or unix:// hands supervision to a process without Django (worker/keeper.py).
    LEAN_SUPERVISOR: bool = True
    # Defaults for tasks that set none (Celery's task_time_limit / task_soft_time_limit), in seconds.
    TASK_TIME_LIMIT: float | None = None
    TASK_SOFT_TIME_LIMIT: float | None = None
    # Modules imported with every app's tasks.py (Celery's `include` / `imports`).
    IMPORTS: tuple = ()
    # Periodic tasks defined in code (Celery's beat_schedule), written to the PeriodicTask table
    # when a scheduler starts: name -> {"task", "schedule", "args", "kwargs", "options"}.
    BEAT_SCHEDULE: dict | None = None
    # The Prometheus endpoint (taskqueue.metrics.view): a scraper sends "Authorization: Bearer <token>";
    # without a token only logged-in staff may read it. Finished-task figures cover the last WINDOW seconds.
    METRICS_TOKEN: str | None = None
    METRICS_WINDOW: float = 300.0

    @property
    def heartbeat_interval(self) -> float:
        return self.HEARTBEAT_INTERVAL or max(0.2, self.VISIBILITY_TIMEOUT / 5)

    @property
    def result_expires(self) -> timedelta | None:
        value = self.RESULT_EXPIRES
        if value is None or isinstance(value, timedelta):
            return value
        return timedelta(seconds=float(value))

    @cached_property
    def signing_key(self) -> bytes:
        if self.SIGNING_KEY:
            return self.SIGNING_KEY.encode()
        secret = django_settings.SECRET_KEY.encode()
        return hmac.new(secret, b"taskqueue.message-signing", hashlib.sha256).digest()


FIELD_NAMES = frozenset(field.name for field in fields(Settings))
Layer = dict[str, Any] | Callable[[], dict[str, Any]]

_cached: Settings | None = None
_layers: list[Layer] = []


def get_settings() -> Settings:
    """Read the TASKQUEUE_* settings once per process, then the app's layers on top (reset by
    `reset_settings()`)."""
    global _cached
    if _cached is None:
        values = {}
        for field in fields(Settings):
            name = f"TASKQUEUE_{field.name}"
            if hasattr(django_settings, name):
                values[field.name] = getattr(django_settings, name)
        for layer in _layers:
            for key, value in _read(layer).items():
                if key == "IMPORTS":  # modules add up: `include=` and `autodiscover_tasks([...])` both count
                    values[key] = tuple(dict.fromkeys((*values.get(key, ()), *value)))
                elif key in FIELD_NAMES:
                    values[key] = value
        _cached = Settings(**values)
    return _cached


def _read(layer: Layer) -> dict[str, Any]:
    return layer() if callable(layer) else layer


def add_layer(layer: Layer) -> None:
    """Put values (by field name; other keys are kept for `layered_value` only) over the settings."""
    _layers.append(layer)
    reset_settings()


def layered_value(key: str, default: Any = None) -> Any:
    """The last value a layer gives for `key` (any key, not only a field)."""
    for layer in reversed(_layers):
        values = _read(layer)
        if key in values:
            return values[key]
    return default


def layers() -> list[Layer]:
    """A copy of the layers, for `restore_layers` (tests that configure the app undo it so)."""
    return list(_layers)


def restore_layers(saved: list[Layer]) -> None:
    _layers[:] = saved
    reset_settings()


def django_settings_named(prefix: str) -> dict[str, Any]:
    """Every Django setting whose name starts with `prefix` (read now), prefix kept."""
    return {name: getattr(django_settings, name) for name in dir(django_settings)
            if name.startswith(prefix) and name.isupper()}


def django_settings_object() -> Any:
    """`django.conf.settings`, so the app can tell it apart from other configuration objects."""
    return django_settings


def reset_settings(**_: Any) -> None:
    """Forget cached settings (connected to Django's setting_changed signal)."""
    global _cached
    _cached = None
