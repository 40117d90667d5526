"""`python -m benchmarks scale`: how taskqueue's cost grows with the work, per broker.

One broker at a time, each in a process of its own (benchmarks/scale_run.py) with a throwaway
database (bench_*; for SQLite a file under benchmarks/results/logs/) and, on Redis, its own key
prefix in DB 13:

1. chords of 1,000 / 10,000 / 100,000 members, `chord(add.s(i, i) for i in range(n))(tsum.s())`
   on `runworker -c 2`: total time and time per member, and the peaks of memory sampled every
   0.5 s while it runs: the worker group (RSS and USS), Redis `used_memory` over its value when the
   chord began (the server is shared: other work on it shows too), and the PostgreSQL backends
   connected to the bench database (sum of their RSS and USS from /proc through psutil; USS leaves
   out the shared buffers a backend has touched, which RSS counts).
2. enqueue and reserve with 0 and with 1,000,000 messages waiting, no worker running: the
   backlog is preloaded in bulk (Redis: the broker's own publish, 2,000 messages a round trip;
   database: one INSERT ... SELECT), then 10,000 `add.delay()` are timed, then the benchmark
   itself calls the broker's `reserve(count=1)` and `ack()` 10,000 times from the head of the
   queue (a worker's path to the broker without the task's run and result write); five rounds
   at each level (as many taken as added, so the backlog stays), medians.
3. `get()` with 0 and with 10,000,000 rows in the results table: after each of 200 round trips
   (`add.delay(i, i).get()`), a fresh `AsyncResult(id).get()` of the finished task is timed
   (p50, p99); the rows are SUCCESS rows done 30 days ago, loaded with one INSERT ... SELECT
   (PostgreSQL: generate_series; SQLite: a recursive CTE), then VACUUM ANALYZE / ANALYZE.
4. `manage.py taskqueue cleanup` of those rows (all expired under the default
   TASKQUEUE_RESULT_EXPIRES), in a process of its own, while round trips run through the worker
   without pause: its time, and the round trips' p50 / p99 / max meanwhile.

Prints a table per measurement and writes benchmarks/results/scale.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from .common import LOG_DIR, REPO_ROOT, RESULTS_DIR, python

BROKERS = {"redis": "taskqueue", "database": "taskqueue-db", "sqlite": "taskqueue-sqlite"}
PARTS = ("chords", "backlog", "results")
FULL = {"sizes": [1_000, 10_000, 100_000], "backlog": 1_000_000, "rows": 10_000_000}
QUICK = {"sizes": [1_000, 10_000], "backlog": 100_000, "rows": 1_000_000}


def options(quick: bool, sizes: str | None, backlog: int | None, rows: int | None, parts: str,
            enqueue: int = 10_000, rounds: int = 5, batch: int = 5_000) -> dict:
    chosen = dict(QUICK if quick else FULL)
    if sizes:
        chosen["sizes"] = [int(size.replace("_", "")) for size in sizes.split(",") if size.strip()]
    if backlog is not None:
        chosen["backlog"] = backlog
    if rows is not None:
        chosen["rows"] = rows
    wanted = [part.strip() for part in parts.split(",") if part.strip()]
    if unknown := set(wanted) - set(PARTS):
        sys.exit(f"unknown parts: {', '.join(sorted(unknown))} (choose from {', '.join(PARTS)})")
    return {**chosen, "parts": wanted, "enqueue": enqueue, "rounds": rounds, "batch": batch}


def budget(chosen: dict) -> float:
    """The longest one broker may take before it is stopped (generous: a busy machine)."""
    return (600 + sum(chosen["sizes"]) * 0.05 + chosen["backlog"] / 1_000 + 120
            + chosen["rows"] / 2_000 + chosen["rows"] / 20_000)


def run_one(broker: str, chosen: dict) -> dict:
    system = BROKERS[broker]
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    out = LOG_DIR / f"scale-{system}.json"
    out.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    started = time.monotonic()
    process = subprocess.Popen([python(), "-m", "benchmarks.scale_run", system, json.dumps(chosen), str(out)],
                               cwd=REPO_ROOT, env=env, start_new_session=True)
    try:
        code = process.wait(budget(chosen))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the driver and its workers
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        code = f"stopped after {budget(chosen):.0f} s"
    result = json.loads(out.read_text()) if out.exists() else {"system": system}
    result["elapsed_s"] = time.monotonic() - started
    if code != 0:
        result["error"] = f"exit {code}: see the output above"
    return result


def run(brokers: str, quick: bool, sizes: str | None, backlog: int | None, rows: int | None, parts: str,
        output: str, enqueue: int = 10_000, rounds: int = 5, batch: int = 5_000) -> None:
    from . import machine

    chosen = options(quick, sizes, backlog, rows, parts, enqueue, rounds, batch)
    names = [name.strip() for name in brokers.split(",") if name.strip()]
    if unknown := set(names) - set(BROKERS):
        sys.exit(f"unknown brokers: {', '.join(sorted(unknown))} (choose from {', '.join(BROKERS)}; "
                 "RabbitMQ is not covered: its queues cannot be preloaded or read by key)")
    facts = machine.facts()
    print(f"machine: {facts['cores']} cores, {facts['cpu_model']}, {facts['memory_gb']} GB; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"options: {chosen}", flush=True)
    results = {}
    for name in names:
        print(f"\n{name} ({BROKERS[name]}):", flush=True)
        results[name] = run_one(name, chosen)
        if "error" in results[name]:
            print(f"  ! {name}: {results[name]['error']}", flush=True)
    print()
    print(format_tables(results))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{output}.json"
    path.write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": facts,
                                "loadavg_after": os.getloadavg(), "options": chosen, "results": results},
                               indent=2, default=str))
    print(f"\nwrote {path}")
    if any("error" in result for result in results.values()):
        sys.exit(1)


def _mb(row: dict, name: str) -> str:
    return f"{row[name]:.1f}" if name in row else "-"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{b / a:.2f}×" if a and b is not None else "-"


def format_tables(results: dict) -> str:
    lines = ["chords (`chord(add.s(i, i) for i in range(n))(tsum.s())`, runworker -c 2; memory: peaks, MB)",
             "| broker | members | total s | µs a member | sent in s | worker RSS | worker USS | Redis over start "
             "| PG backends RSS | PG backends USS |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for broker, result in results.items():
        for row in result.get("chords", []):
            lines.append(f"| {broker} | {row['n']:,} | {row['seconds']:.2f} | {row['us_per_member']:.0f} | "
                         f"{row['send_s']:.2f} | {_mb(row, 'worker_rss_mb')} | {_mb(row, 'worker_uss_mb')} | "
                         f"{_mb(row, 'redis_used_over_start_mb')} | {_mb(row, 'pg_rss_mb')} | "
                         f"{_mb(row, 'pg_uss_mb')} |")
    lines += ["", "enqueue (add.apply_async with a queue) and reserve (broker.reserve(count=1) + ack, by the "
              "benchmark), no worker running; medians of the rounds; the last two rows in alternation",
              "| broker | waiting in the queue | N x rounds | enqueue /s | reserve+ack /s | enqueue vs row 2 "
              "| reserve vs row 2 | best enqueue /s | best reserve /s |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for broker, result in results.items():
        rows = result.get("backlog", [])
        for row in rows:
            base = rows[1] if len(rows) > 1 else row
            lines.append(f"| {broker} | {row['label']} | {row['n']:,} x {row['rounds']} | "
                         f"{row['enqueue_per_s']:,.0f} | "
                         f"{row['reserve_ack_per_s']:,.0f} | {_ratio(base['enqueue_per_s'], row['enqueue_per_s'])} | "
                         f"{_ratio(base['reserve_ack_per_s'], row['reserve_ack_per_s'])} | "
                         f"{row['enqueue_best_per_s']:,.0f} | {row['reserve_best_per_s']:,.0f} |")
    lines += ["", "get() of a finished task (a fresh AsyncResult(id).get()) and the round trip before it, "
              "200 of each, ms", "| broker | result rows | get p50 | get p99 | round trip p50 | round trip p99 "
              "| get p50 vs the first |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for broker, result in results.items():
        rows = result.get("get", [])
        for row in rows:
            lines.append(f"| {broker} | {row['rows']:,} ({row['label']}) | {row['get_p50_ms']:.2f} | "
                         f"{row['get_p99_ms']:.2f} | {row['round_trip_p50_ms']:.2f} | {row['round_trip_p99_ms']:.2f} | "
                         f"{_ratio(rows[0]['get_p50_ms'], row['get_p50_ms'])} |")
    lines += ["", "`manage.py taskqueue cleanup` of the expired rows, round trips through the worker meanwhile",
              "| broker | expired rows | batch | seconds | rows/s | round trips | p50 ms | p99 ms | max ms | failed "
              "| expired left |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for broker, result in results.items():
        row = result.get("cleanup")
        if row:
            lines.append(f"| {broker} | {row['rows']:,} | {row['batch_size']:,} | {row['seconds']:.1f} | "
                         f"{row['rows_per_s']:,.0f} | {row['round_trips']} | {row['p50_ms'] or 0:.1f} | "
                         f"{row['p99_ms'] or 0:.1f} | {row['max_ms'] or 0:.1f} | {row['failed']} | "
                         f"{row['expired_left']} |")
    return "\n".join(lines)
