"""The only reader of Django settings: every TASKQUEUE_* setting, typed, with its default."""

from __future__ import annotations

import hashlib
import hmac
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


_cached: Settings | None = None


def get_settings() -> Settings:
    """Read the TASKQUEUE_* settings once per process (reset by `reset_settings()`)."""
    global _cached
    if _cached is None:
        values = {}
        for field in fields(Settings):
            name = f"TASKQUEUE_{field.name}"
            if hasattr(django_settings, name):
                values[field.name] = getattr(django_settings, name)
        _cached = Settings(**values)
    return _cached


def reset_settings(**_: Any) -> None:
    """Forget cached settings (connected to Django's setting_changed signal)."""
    global _cached
    _cached = None
