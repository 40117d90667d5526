"""`python -m benchmarks idle`: what an idle worker costs, per broker.

One system at a time (so none disturbs another's figure): start its `runworker -c 2`, make 20
round trips, wait 2 s, then read the CPU time of the worker's processes (every thread) before and
after S seconds in which nothing is sent; the share of one core is their difference over S. Then
one more round trip, the first after the idle spell, is timed beside the median of the 20 warm
ones: a worker that sleeps deeply must still wake at once. One such sample is mostly noise, so
`--pauses N` times N more, each after `--pause-seconds` of nothing sent, and reports their median
beside the warm one (the same for a peer such as `huey` shows what any system pays after a pause).
Results in benchmarks/results/idle.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable

from .adapters import DATABASE_SYSTEMS
from .common import PG_DSN, RESULTS_DIR, TASKQUEUE_REDIS_DB, rabbitmq_problem, redis_client
from .runner import Driver, DriverError

DEFAULT = ["taskqueue", *DATABASE_SYSTEMS, "taskqueue-amqp"]


def main(requested: str | None, seconds: float, pauses: int = 5, pause_s: float = 3.0) -> None:
    systems = [s.strip() for s in requested.split(",") if s.strip()] if requested else list(DEFAULT)
    if requested is None and (problem := rabbitmq_problem()):
        print(f"note: skipping taskqueue-amqp: {problem}", flush=True)
        systems.remove("taskqueue-amqp")
    results: dict[str, dict] = {}
    for system in systems:
        print(f"{system}: starting ...", flush=True)
        driver = Driver(system)
        try:
            driver.request("start", timeout=240, warmup=5)
            results[system] = driver.request("idle", timeout=seconds + pauses * (pause_s + 10) + 120, seconds=seconds,
                                             pauses=pauses, pause_s=pause_s)
        except (DriverError, NotImplementedError) as exc:
            results[system] = {"error": str(exc)}
        finally:
            driver.close()
        print(f"{system}: {results[system]}", flush=True)
    host = host_after_pauses(pauses, pause_s) if pauses else {}
    print()
    print(format_table(results))
    for name, figures in host.items():
        print(f"this host, {name}: warm p50 {figures['warm_p50_ms']:.3f} ms, after {pause_s:g} s pauses p50 "
              f"{figures['after_pause_p50_ms']:.3f} ms")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "idle.json").write_text(json.dumps({"seconds": seconds, "pauses": pauses, "pause_s": pause_s,
                                                       "results": results, "host": host}, indent=2))
    print(f"\nwrote {RESULTS_DIR / 'idle.json'}")
    if any("error" in r for r in results.values()):
        sys.exit(1)


def format_table(results: dict[str, dict]) -> str:
    lines = [f"{'system':18s} {'idle CPU (% of a core)':>24s} {'first after idle (ms)':>22s} "
             f"{'after pauses p50 (ms)':>22s} {'warm p50 (ms)':>14s}  set-up"]
    for system, r in results.items():
        if "error" in r:
            lines.append(f"{system:18s} failed: {r['error']}")
            continue
        after = r.get("after_pause_p50_ms")
        lines.append(f"{system:18s} {r['cpu_percent']:>24.2f} {r['first_round_trip_ms']:>22.2f} "
                     f"{'-' if after is None else f'{after:.2f}':>22s} {r['warm_round_trip_p50_ms']:>14.2f}  "
                     f"{r['description']}")
    return "\n".join(lines)


def host_after_pauses(pauses: int, pause_s: float) -> dict[str, dict]:
    """The same pauses around the servers alone, with no worker and no task queue: a Redis PING,
    a PostgreSQL SELECT 1 and a single-row INSERT committed, warm and each after `pause_s` of
    nothing. What a system's first task after a pause loses beyond these is its own."""
    import psycopg

    redis = redis_client(TASKQUEUE_REDIS_DB)
    figures: dict[str, dict] = {}
    table = f"bench_pause_{os.getpid()}"  # a logged table: its commits wait for the disk, as a delay()'s do
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=10) as pg:
        pg.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, v text)")
        try:
            probes: dict[str, Callable[[], object]] = {
                "Redis PING": redis.ping,
                "PostgreSQL SELECT 1": lambda: pg.execute("SELECT 1").fetchone(),
                "PostgreSQL INSERT committed": lambda: pg.execute(f"INSERT INTO {table} (v) VALUES ('x')"),
            }
            for name, probe in probes.items():
                warm = [_timed_ms(probe) for _ in range(200)]
                after = []
                for _ in range(pauses):
                    time.sleep(pause_s)  # nothing sent: the pause is the measurement
                    after.append(_timed_ms(probe))
                figures[name] = {"warm_p50_ms": statistics.median(warm), "after_pause_ms": after,
                                 "after_pause_p50_ms": statistics.median(after)}
        finally:
            pg.execute(f"DROP TABLE {table}")
    return figures


def _timed_ms(probe: Callable[[], object]) -> float:
    started = time.perf_counter()
    probe()
    return (time.perf_counter() - started) * 1000
