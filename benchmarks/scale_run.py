"""`python -m benchmarks.scale_run SYSTEM OPTIONS_JSON OUT_JSON`: one broker's part of `python -m
benchmarks scale` (see benchmarks/scale.py), in a process of its own so each broker configures
Django its own way. Writes what it measured to OUT_JSON after every step; progress on stdout.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from .adapters import create
from .common import PG_DSN, TASKQUEUE_REDIS_DB, percentile, python, redis_client

EMPTY, BACKLOG = "scale-empty", "scale-backlog"  # the queues of part 2


def say(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Sampler(threading.Thread):
    """Peak memory while a step runs, sampled every `interval` s: the worker group (RSS and USS:
    main process and children), Redis `used_memory` (over its value when sampling began; the server
    is shared, so other work shows too) and the PostgreSQL backends connected to the bench database
    (sum of their RSS and USS read by psutil from /proc: USS leaves out the shared buffers)."""

    def __init__(self, adapter: Any, system: str, interval: float = 0.5):
        super().__init__(daemon=True)
        self.adapter, self.interval = adapter, interval
        self.done = threading.Event()
        self.peak: dict[str, float] = {}
        self.redis = redis_client(TASKQUEUE_REDIS_DB) if system in ("taskqueue", "taskqueue-amqp") else None
        self.redis_base = self.redis.info("memory")["used_memory"] if self.redis else 0
        self.pg = None
        if system != "taskqueue-sqlite":
            import psycopg

            self.pg = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=10)

    def _max(self, name: str, value: float) -> None:
        self.peak[name] = max(self.peak.get(name, 0.0), value)

    def sample(self) -> None:
        workers = self.adapter.workers
        if workers is not None:
            memory = workers.memory()
            self._max("worker_rss_mb", memory["rss_mb"])
            self._max("worker_uss_mb", memory["uss_mb"])
        if self.redis is not None:
            self._max("redis_used_over_start_mb", (self.redis.info("memory")["used_memory"] - self.redis_base) / 2**20)
        if self.pg is not None:
            pids = [row[0] for row in self.pg.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", [os.environ["TASKQUEUE_BENCH_DB"]])]
            rss = uss = 0
            for pid in pids:
                try:
                    info = psutil.Process(pid).memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                rss, uss = rss + info.rss, uss + info.uss
            self._max("pg_backends", len(pids))
            self._max("pg_rss_mb", rss / 2**20)
            self._max("pg_uss_mb", uss / 2**20)

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                self.sample()
            except Exception as exc:  # a worker restarting, a backend gone: the next sample will do
                self.peak.setdefault("sample_errors", 0)
                self.peak["sample_errors"] += 1
                self.peak["last_sample_error"] = str(exc)[:200]  # type: ignore[assignment]

    def __enter__(self) -> Sampler:
        self.sample()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(10)
        self.sample()
        if self.redis is not None:
            self.redis.close()
        if self.pg is not None:
            self.pg.close()


class Autovacuum(threading.Thread):
    """What autovacuum does with its defaults, for a server that has it off (this machine's CI
    configuration sets `autovacuum = off`): every `naptime` s, VACUUM each table of the bench
    database whose dead rows exceed 50 + 20 % of its live ones. Without it the database broker's
    queue table keeps every dead row at its head and each reserve walks past them."""

    def __init__(self, naptime: float = 60.0):
        super().__init__(daemon=True)
        self.naptime, self.done, self.runs = naptime, threading.Event(), 0
        self.dsn = f"{PG_DSN.replace('dbname=postgres', '')} dbname={os.environ['TASKQUEUE_BENCH_DB']}"

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SHOW autovacuum").fetchone()[0] == "on":
                return  # the server's own does it
            while not self.done.wait(self.naptime):
                tables = [row[0] for row in conn.execute(
                    "SELECT relname FROM pg_stat_user_tables WHERE n_dead_tup > 50 + 0.2 * n_live_tup")]
                for table in tables:
                    conn.execute(f'VACUUM ANALYZE "{table}"')
                    self.runs += 1


# -- 1. chords -------------------------------------------------------------------------------------

def chords(adapter: Any, system: str, sizes: list[int], out: dict) -> None:
    from taskqueue import chord

    from .tasks import add, tsum

    adapter.start(warmup=20)
    try:
        for n in sizes:
            timeout = 120 + n * 0.05
            with Sampler(adapter, system) as sampler:
                started = time.perf_counter()
                result = chord((add.s(i, i) for i in range(n)), tsum.s())()
                sent = time.perf_counter() - started
                value = result.get(timeout=timeout)
                seconds = time.perf_counter() - started
            assert value == n * (n - 1), value
            row = {"n": n, "seconds": seconds, "send_s": sent, "us_per_member": seconds / n * 1e6, **sampler.peak}
            out.setdefault("chords", []).append(row)
            say(f"chord of {n:,}: {seconds:.2f} s ({row['us_per_member']:.0f} µs a member, sent in {sent:.2f} s), "
                f"peaks {({k: round(v, 1) for k, v in sampler.peak.items() if isinstance(v, float)})}")
            adapter.reset_results()
    finally:
        adapter.stop()


# -- 2. a waiting backlog ------------------------------------------------------------------------------

def backlog(adapter: Any, system: str, waiting: int, n: int, rounds: int, out: dict) -> None:
    """No worker runs. A round: `n` `add.apply_async(queue=...)` (delay() with a queue named), then
    the benchmark itself takes `n` from the head of that queue through the broker's own reserve()
    (count=1) and ack(); as many taken as added, so what waits stays as it was. First `rounds` on an
    empty broker (after an untimed round of 1,000); then `waiting` messages are preloaded in bulk
    into a second queue, and rounds on the empty queue and on the one behind the backlog
    alternate, so the drift of a shared machine falls on both alike. Medians of the rounds."""
    from taskqueue.brokers import get_broker

    broker = get_broker()
    body = sample_body(broker)
    enqueue_and_reserve(broker, EMPTY, 1_000)
    alone = [enqueue_and_reserve(broker, EMPTY, n) for _ in range(rounds)]
    started = time.perf_counter()
    preload(system, broker, waiting, body)
    say(f"preloaded {waiting:,} waiting messages in {time.perf_counter() - started:.1f} s")
    pairs = [(enqueue_and_reserve(broker, EMPTY, n), enqueue_and_reserve(broker, BACKLOG, n)) for _ in range(rounds)]
    rows = [("0, broker empty", 0, alone), (f"0, {waiting:,} in another queue", 0, [a for a, _ in pairs]),
            (f"{waiting:,}", waiting, [b for _, b in pairs])]
    for label, count, timings in rows:
        row = {"label": label, "waiting": count, "n": n, "rounds": rounds,
               "enqueue_per_s": n / statistics.median(t[0] for t in timings),
               "reserve_ack_per_s": n / statistics.median(t[1] for t in timings),
               "enqueue_best_per_s": n / min(t[0] for t in timings),
               "reserve_best_per_s": n / min(t[1] for t in timings),
               "each": [[round(n / e), round(n / r)] for e, r in timings]}
        out.setdefault("backlog", []).append(row)
        say(f"{label} waiting: enqueue {row['enqueue_per_s']:,.0f}/s, reserve+ack {row['reserve_ack_per_s']:,.0f}/s "
            f"(rounds: {row['each']})")
    empty_queue(system)


def enqueue_and_reserve(broker: Any, queue: str, n: int) -> tuple[float, float]:
    from .tasks import add

    started = time.perf_counter()
    for i in range(n):
        add.apply_async((i, i), queue=queue)
    enqueue_s = time.perf_counter() - started
    consumer = f"scale-{os.getpid()}"
    started = time.perf_counter()
    taken = 0
    while taken < n:  # bounded: an empty reserve stops it
        deliveries = broker.reserve(consumer, [queue], count=1, timeout=0)
        if not deliveries:
            raise RuntimeError(f"queue empty after {taken} of {n} reserves")
        broker.ack(deliveries)
        taken += len(deliveries)
    reserve_s = time.perf_counter() - started
    broker.leases(requeue=[consumer])
    return enqueue_s, reserve_s


def sample_body(broker: Any) -> bytes:
    """The body of a real `add` message, for the preloaded ones (same size)."""
    from .tasks import add

    task_id = add.apply_async((1, 1), queue=EMPTY).id
    body = broker.inspect([task_id]).bodies[task_id]
    taker = f"scale-empty-{os.getpid()}"
    broker.ack(broker.reserve(taker, [EMPTY], count=1, timeout=0))
    broker.leases(requeue=[taker])
    return body


def preload(system: str, broker: Any, waiting: int, body: bytes) -> None:
    """`waiting` messages in the BACKLOG queue, ahead of any sent later."""
    if system in ("taskqueue", "taskqueue-amqp"):
        from taskqueue.brokers.base import Outgoing

        batch = 2_000
        for start in range(0, waiting, batch):  # the broker's publish, a batch a round trip
            broker.publish([Outgoing(BACKLOG, f"backlog-{i}", body) for i in range(start, min(waiting, start + batch))])
        return
    from django.db import connection
    from django.utils import timezone

    from taskqueue.models import QueuedMessage

    table = QueuedMessage._meta.db_table
    columns = "key, task_id, queue, body, priority, available_at, rank, redeliveries, date_created"
    rank = time.time() - 100  # ranks are when a message became ready (epoch s): these first
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"INSERT INTO {table} ({columns}) SELECT 'backlog-' || g, 'backlog-' || g, %s, %s, 0, "
                           f"now(), %s + g * 1e-6, 0, now() FROM generate_series(1, %s) AS g",
                           [BACKLOG, body.decode(), rank, waiting])
        else:
            stamp = connection.ops.adapt_datetimefield_value(timezone.now())
            cursor.execute(f"WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < %s) "
                           f"INSERT INTO {table} ({columns}) SELECT 'backlog-' || g, 'backlog-' || g, %s, %s, 0, "
                           f"%s, %s + g * 1e-6, 0, %s FROM n", [waiting, BACKLOG, body.decode(), stamp, rank, stamp])
        cursor.execute(f"ANALYZE {table}")  # as autovacuum would soon


def empty_queue(system: str) -> None:
    """Drop what is left waiting, without a reserve per message: UNLINK (Redis frees it in the
    background), TRUNCATE on PostgreSQL, DELETE on SQLite."""
    if system in ("taskqueue", "taskqueue-amqp"):
        from taskqueue.brokers.keys import key

        client = redis_client(TASKQUEUE_REDIS_DB)
        prefix = os.environ["TASKQUEUE_BENCH_PREFIX"]
        client.unlink(key(prefix, "msg"), *(key(prefix, name, queue) for name in ("queue", "wake")
                                             for queue in (EMPTY, BACKLOG)))
        client.close()
        return
    from django.db import connection

    from taskqueue.models import QueuedMessage

    table = QueuedMessage._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}" if connection.vendor == "postgresql" else f"DELETE FROM {table}")


# -- 3 and 4. result rows: get() and cleanup ------------------------------------------------------------

def round_trips(count: int) -> dict:
    """`count` round trips (delay().get()), and after each a fresh AsyncResult(id).get() of the
    finished task: the lookup of a stored result."""
    from taskqueue.result import AsyncResult

    from .tasks import add

    trips, lookups = [], []
    for i in range(count):
        started = time.perf_counter()
        result = add.delay(i, i)
        assert result.get(timeout=10) == 2 * i
        trips.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        assert AsyncResult(result.id).get(timeout=10) == 2 * i
        lookups.append((time.perf_counter() - started) * 1000)
    trips.sort()
    lookups.sort()
    return {"samples": count, "get_p50_ms": statistics.median(lookups), "get_p99_ms": percentile(lookups, 0.99),
            "round_trip_p50_ms": statistics.median(trips), "round_trip_p99_ms": percentile(trips, 0.99)}


def load_results(rows: int) -> float:
    """`rows` SUCCESS rows done 30 days ago (expired under the default TASKQUEUE_RESULT_EXPIRES of a
    day), random task ids; then VACUUM ANALYZE (PostgreSQL) or ANALYZE (SQLite), as at rest."""
    from django.db import connection

    from taskqueue.models import TaskResult

    table = TaskResult._meta.db_table
    columns = "task_id, task_name, state, args, kwargs, result, retries, queue, worker, date_created, date_started, " \
              "date_done"
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET statement_timeout = '3600s'")
            cursor.execute(f"INSERT INTO {table} ({columns}) SELECT md5('r' || g)::uuid::text, 'benchmarks.tasks.add', "
                           f"'SUCCESS', jsonb_build_array(g, g), '{{}}'::jsonb, to_jsonb(2 * g), 0, 'default', "
                           f"'worker@host', t, t, t FROM generate_series(1, %s) AS g, "
                           f"LATERAL (SELECT now() - interval '30 days' - g * interval '1 millisecond' AS t) AS d",
                           [rows])
            cursor.execute("SET statement_timeout = 0")
            cursor.execute(f"VACUUM ANALYZE {table}")
        else:
            cursor.execute(f"WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < %s) "
                           f"INSERT INTO {table} ({columns}) SELECT lower(hex(randomblob(16))), "
                           f"'benchmarks.tasks.add', 'SUCCESS', json_array(g, g), '{{}}', 2 * g, 0, 'default', "
                           f"'worker@host', d, d, d FROM (SELECT g, datetime('now', '-30 days', "
                           f"'-' || g || ' seconds') AS d FROM n)", [rows])
            cursor.execute(f"ANALYZE {table}")
    return time.perf_counter() - started


def results(adapter: Any, system: str, rows: int, batch: int, out: dict) -> None:
    """get() with no rows but the round trips' own, with `rows` more, then (after the cleanup and a
    VACUUM, as autovacuum would) with none again: a drift of a shared machine shows there."""
    from django.db import connection

    from taskqueue.models import TaskResult

    adapter.start(warmup=100)
    try:
        out["get"] = []
        measure_get(out, "no rows")
        loaded = load_results(rows)
        say(f"loaded {rows:,} expired result rows in {loaded:.1f} s")
        measure_get(out, f"{rows:,} rows", load_s=loaded)
        out["cleanup"] = cleanup(adapter, system, rows, batch)
        adapter.reset_results()
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {TaskResult._meta.db_table}" if connection.vendor == "postgresql"
                           else "VACUUM")
        measure_get(out, "no rows again (after cleanup, VACUUM)")
    finally:
        adapter.stop()


def measure_get(out: dict, label: str, count: int = 200, **extra: Any) -> None:
    from taskqueue.models import TaskResult

    row = {"label": label, "rows": TaskResult.objects.count(), **round_trips(count), **extra}
    out["get"].append(row)
    say(f"get() with {row['rows']:,} rows ({label}): p50 {row['get_p50_ms']:.2f} ms, p99 {row['get_p99_ms']:.2f} ms "
        f"(round trip p50 {row['round_trip_p50_ms']:.2f} ms)")


def cleanup(adapter: Any, system: str, rows: int, batch: int) -> dict:
    """`manage.py taskqueue cleanup` in a process of its own while this one makes round trips
    through the worker without pause (a thread, so the two never share a GIL)."""
    from taskqueue.models import TaskResult

    from .tasks import add

    kept_before = TaskResult.objects.count() - rows
    samples: list[float] = []
    failures: list[str] = []
    done = threading.Event()

    def trips() -> None:
        i = 0
        while not done.is_set():
            i += 1
            started = time.perf_counter()
            try:
                assert add.delay(i, i).get(timeout=30) == 2 * i
            except Exception as exc:  # counted; its time is kept as a sample
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
            samples.append((time.perf_counter() - started) * 1000)

    thread = threading.Thread(target=trips, daemon=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    timeout = 600 + rows / 2_000
    with Sampler(adapter, system) as sampler:
        thread.start()
        time.sleep(1.0)
        before = len(samples)
        started = time.perf_counter()
        proc = subprocess.run([python(), "-m", "django", "taskqueue", "cleanup", "--batch-size", str(batch)],
                              env=env, capture_output=True, text=True, timeout=timeout)
        seconds = time.perf_counter() - started
        during = sorted(samples[before:])
        done.set()
        thread.join(40)
    if proc.returncode:
        raise RuntimeError(f"cleanup failed ({proc.returncode}): {proc.stderr[-2000:]}")
    from django.utils import timezone

    left = TaskResult.objects.count()
    expired_left = TaskResult.objects.filter(date_done__lt=timezone.now() - datetime.timedelta(days=1)).count()
    result = {"rows": rows, "batch_size": batch, "seconds": seconds, "rows_per_s": rows / seconds,
              "output": proc.stdout.strip(), "rows_left": left, "expired_left": expired_left,
              "kept_before": kept_before,
              "round_trips": len(during), "failed": len(failures), "first_failure": failures[:1],
              "p50_ms": statistics.median(during) if during else None,
              "p99_ms": percentile(during, 0.99) if during else None, "max_ms": during[-1] if during else None,
              **sampler.peak}
    say(f"cleanup of {rows:,}: {seconds:.1f} s ({result['output']}); {len(during)} round trips meanwhile: "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms; "
        f"{left:,} rows left, {expired_left} of them expired")
    return result


def main() -> None:
    system, options, out_path = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    adapter = create(system)
    out: dict = {"system": system, "description": adapter.description}

    def save() -> None:
        out_path.write_text(json.dumps(out, indent=2, default=str))

    adapter.setup()
    vacuum = Autovacuum() if system != "taskqueue-sqlite" else None
    if vacuum is not None:
        vacuum.start()
    try:
        if "chords" in options["parts"]:
            chords(adapter, system, options["sizes"], out)
            save()
        if "backlog" in options["parts"]:
            backlog(adapter, system, options["backlog"], options["enqueue"], options["rounds"], out)
            save()
        if "results" in options["parts"]:
            results(adapter, system, options["rows"], options["batch"], out)
            save()
    finally:
        if vacuum is not None:
            vacuum.done.set()
            vacuum.join(600)
            out["autovacuum_emulated_runs"] = vacuum.runs
        adapter.stop()
        if system in ("taskqueue", "taskqueue-amqp"):
            empty_queue(system)
        adapter.teardown()
        save()


if __name__ == "__main__":
    main()
