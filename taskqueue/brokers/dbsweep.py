"""Vacuum of the database broker's queue table on PostgreSQL, when its dead rows pile up.

Every message taken and acked leaves dead row versions, and the claims' index (by rank, waiting
messages only) keeps an entry for each at the head of its queue until a vacuum: every claim walks
past all of them (during a chord of 100,000 members a claim read 57 index pages at the start, 454
near the end). Autovacuum looks at most once a naptime (a minute by default) and waits for a fifth
of the live rows to be dead: too late for a queue. So a consumer that took `CHECK_EVERY` messages
reads the table's dead and live rows from the server's statistics (one cheap query) and, past
`DEAD_ROWS` and a tenth of the live rows, vacuums it in a thread with a connection of its own, so
no task waits for it. A table that another vacuum holds is skipped; a user not allowed to vacuum it
gets a warning from the server, not an error.
"""

from __future__ import annotations

import logging
import os
import threading

from django.db import connections

logger = logging.getLogger("taskqueue.broker")

CHECK_EVERY = 1_000  # messages taken by one process between two looks at the statistics
DEAD_ROWS = 10_000  # dead rows (two a message: its claim and its ack) before a vacuum, plus a tenth of the live ones


class Sweeper:
    def __init__(self, alias: str, table: str):
        self.alias, self.table = alias, table
        self._taken = 0
        self._thread: threading.Thread | None = None
        self._pid = 0

    def taken(self, count: int, connection) -> None:
        """Count messages taken on `connection` (this consumer's, outside a transaction); now and
        then, look whether the table needs a vacuum and start one."""
        self._taken += count
        if self._taken < CHECK_EVERY:
            return
        self._taken = 0
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return  # one at a time per process
        if connection.in_atomic_block:  # a failed look would spoil the caller's transaction
            return
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables WHERE relid = %s::regclass",
                               [self.table])
                row = cursor.fetchone()
        except Exception:  # a look that fails must not fail the reserve: the next one looks again
            logger.warning("Could not read the statistics of %s", self.table, exc_info=True)
            return
        if row is None or row[0] <= DEAD_ROWS + row[1] // 10:
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._vacuum, name="taskqueue-queue-vacuum", daemon=True)
        self._thread.start()

    def _vacuum(self) -> None:
        database = connections[self.alias]
        try:
            conn = database.get_new_connection(database.get_connection_params())
        except Exception:
            logger.warning("Could not connect to vacuum %s", self.table, exc_info=True)
            return
        try:
            conn.autocommit = True
            # INDEX_CLEANUP ON: the dead entries the claims walk past are what it is for, and AUTO
            # skips the indexes when the dead rows sit on few pages (a queue consumed at its head).
            conn.execute(f"VACUUM (INDEX_CLEANUP ON, SKIP_LOCKED) {self.table}")
        except Exception:
            logger.warning("Vacuum of %s failed", self.table, exc_info=True)
        finally:
            conn.close()
