"""The Huey 3 app of the database peers: the Redis app's `add`, `tsum` and `slow` (`huey_tasks`), on
PostgresHuey or SqliteHuey: this module only chooses the storage.

BENCH_HUEY_STORAGE picks the storage: ``pg`` for `PostgresHuey` (Huey 3.5+: the queue, results and
counters in tables of a throwaway database, BENCH_HUEY_PG_DB; a worker with nothing to do waits on
LISTEN, woken by the NOTIFY of each enqueue), ``sqlite`` for `SqliteHuey` (one SQLite file,
BENCH_HUEY_SQLITE, WAL; the consumer polls). Neither has Redis's result notification, so a
blocking `get()` polls.

Run with ``huey_consumer benchmarks.peers.huey_db_app.huey -w 2 -k process``.
"""

from __future__ import annotations

import os

from huey import PostgresHuey, SqliteHuey
from psycopg.conninfo import make_conninfo

from benchmarks.common import PG_DSN
from benchmarks.peers.huey_tasks import define_tasks

NAME = "bench-huey-db"
STORAGE = os.environ.get("BENCH_HUEY_STORAGE", "pg")

if STORAGE == "sqlite":
    huey = SqliteHuey(NAME, filename=os.environ["BENCH_HUEY_SQLITE"], results=True)
else:
    huey = PostgresHuey(NAME, dsn=make_conninfo(PG_DSN, dbname=os.environ.get("BENCH_HUEY_PG_DB", "bench_huey_pg")),
                        results=True)

add, tsum, slow = define_tasks(huey, __name__)
