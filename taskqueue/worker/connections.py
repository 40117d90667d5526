"""Database connection hygiene in consumers: keep connections open between tasks (a new
PostgreSQL connection per task is what makes Celery's django-db backend slow), but drop any
that broke or sat idle long enough for the server or a proxy to have closed them."""

from __future__ import annotations

import time

from django.db import connections

IDLE_CHECK_AFTER = 30.0  # seconds without a task before a connection is pinged


class ConnectionKeeper:
    def __init__(self) -> None:
        self._last_used = time.monotonic()

    def before_batch(self) -> None:
        idle = time.monotonic() - self._last_used > IDLE_CHECK_AFTER
        for conn in connections.all(initialized_only=True):
            if conn.connection is None:
                continue
            if conn.in_atomic_block:  # a task left a transaction open: never carry it over
                conn.close()
            elif (conn.errors_occurred or idle) and not conn.is_usable():
                conn.close()
            conn.errors_occurred = False
        self._last_used = time.monotonic()
