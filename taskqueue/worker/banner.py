"""The text a worker prints when it starts."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.db import connection

from .. import registry
from ..conf import get_settings
from . import WorkerConfig


def _mask(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":****@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def banner(config: WorkerConfig, lean_supervisor: bool = False) -> str:
    settings = get_settings()
    db = connection.settings_dict
    tasks = "\n".join(f"  . {name}" for name in sorted(registry.all_tasks())) or "  (none)"
    return (
        f"-------------- taskqueue worker {config.hostname}\n"
        f"broker:       {_mask(settings.BROKER_URL)}\n"
        f"database:     {db['ENGINE'].rsplit('.', 1)[-1]} {db.get('NAME')}\n"
        f"queues:       {', '.join(config.queues or [settings.DEFAULT_QUEUE])}\n"
        f"concurrency:  {config.concurrency} ({config.pool}){' + scheduler (--beat)' if config.beat else ''}\n"
        f"supervisor:   {'without Django, after forking (worker/keeper.py)' if lean_supervisor else 'this process'}\n"
        f"lease:        {settings.VISIBILITY_TIMEOUT} s (heartbeat every {settings.heartbeat_interval} s)\n"
        f"[tasks]\n{tasks}"
    )
