"""The Procrastinate 3 app of the benchmark: `add` and `slow` (the mixed load) on PostgreSQL.

Jobs live in a throwaway database of their own (BENCH_PROCRASTINATE_DB, schema applied by the
benchmark driver). Procrastinate keeps no return values (a job ends as `succeeded`) and has no
chord or chain.

Run with ``python -m procrastinate --app benchmarks.peers.procrastinate_app.app worker --concurrency 1``.
"""

from __future__ import annotations

import os
import time

from procrastinate import App, PsycopgConnector
from psycopg.conninfo import make_conninfo

from benchmarks.common import PG_DSN

DB_NAME = os.environ.get("BENCH_PROCRASTINATE_DB", "bench_procrastinate")
CONNINFO = make_conninfo(PG_DSN, dbname=DB_NAME)

app = App(connector=PsycopgConnector(conninfo=CONNINFO))


@app.task(name="add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="slow")
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
