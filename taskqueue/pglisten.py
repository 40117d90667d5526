"""A LISTEN connection per thread on one PostgreSQL channel, for waiting on NOTIFY: the database
broker's idle consumers wait for a queue's name, `get()` waiters for a task id. Its own
connection (autocommit, made with the alias's parameters), never Django's, which may be inside
a transaction; a new one after fork or when it broke.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Container

from django.db import connections


class Listener:
    def __init__(self, alias: str, channel: str):
        self.alias, self.channel = alias, channel
        self._local = threading.local()

    @property
    def generation(self) -> int:
        """How many times this thread began to listen: a change means notifications may have been
        missed in between (a new connection, or a LISTEN after an UNLISTEN)."""
        return getattr(self._local, "generation", 0)

    def listen(self):
        """This thread's connection, listening (call before looking, so no NOTIFY falls between)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and self._local.pid == os.getpid() and not self._local.listening:
            try:
                conn.execute(f'LISTEN "{self.channel}"')
                self._local.listening = True
                self._local.generation = self.generation + 1
            except Exception:  # dropped by the server while it was kept unlistening: a new one
                self.close()
                conn = None
        if conn is None or conn.closed or self._local.pid != os.getpid():
            database = connections[self.alias]
            conn = database.get_new_connection(database.get_connection_params())
            conn.autocommit = True
            conn.execute(f'LISTEN "{self.channel}"')
            self._local.conn, self._local.pid, self._local.listening = conn, os.getpid(), True
            self._local.generation = self.generation + 1
        return conn

    def unlisten(self) -> None:
        """Stop listening and keep the connection, for a thread that will not wait for a while:
        notifications it left unread would fill its socket, and the server's backend, blocked on
        sending them, would hold back vacuum everywhere."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or self._local.pid != os.getpid() or not self._local.listening:
            return
        try:
            conn.execute(f'UNLISTEN "{self.channel}"')
            self._local.listening = False
            for _ in conn.notifies(timeout=0):  # what came before the UNLISTEN
                pass
        except Exception:  # broken: a new connection next time
            self.close()

    def forget_earlier(self, payloads: Container[str] = ()) -> bool:
        """Drop what arrived before now; whether a payload of `payloads` was among it."""
        heard = False
        for note in self.listen().notifies(timeout=0):
            heard = heard or _parts(note.payload)[0] in payloads
        return heard

    def wait_for(self, payloads: Container[str], seconds: float) -> str | None:
        """Wait up to `seconds` for a notification whose payload (up to a newline) is in `payloads`
        and return what followed its newline (often ""); None when none came (or the connection
        broke: a new one is made next time, after a short pause)."""
        deadline = time.monotonic() + max(0.0, seconds)
        try:
            conn = self.listen()
            while (remaining := deadline - time.monotonic()) > 0.001:  # psycopg's wait counts in ms
                for note in conn.notifies(timeout=remaining, stop_after=1):
                    name, rest = _parts(note.payload)
                    if name in payloads:
                        return rest
        except Exception:
            self.close()
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken
                pass


def _parts(payload: str) -> tuple[str, str]:
    """What a notification is about (its payload up to a newline) and what it carries after it (a
    result's outcome, say; often nothing)."""
    name, _, rest = payload.partition("\n")
    return name, rest
