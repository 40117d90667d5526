"""python -m benchmarks latency [--rounds N]: taskqueue's delay().get() round trip on this machine.

Creates a throwaway PostgreSQL database, starts a 2-process worker, warms it, then times
sequential round trips and prints p50/p95/p99. (The comparison with Celery and its peers is
the benchmark issue's harness.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _setup_database() -> None:
    import psycopg

    name = os.environ.get("TASKQUEUE_BENCH_DB", "taskqueue_bench")
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def latency(rounds: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command

    from taskqueue.testing import start_worker
    from tests.tasks import add

    call_command("migrate", verbosity=0)
    worker = start_worker("-c", "2")
    try:
        for _ in range(50):
            add.delay(1, 1).get(timeout=10)
        samples = []
        for i in range(rounds):
            started = time.perf_counter()
            assert add.delay(i, i).get(timeout=10) == 2 * i
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        worker.terminate()
    samples.sort()
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
    return {"rounds": rounds, "p50_ms": statistics.median(samples), "p95_ms": pick(0.95), "p99_ms": pick(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("scenario", choices=["latency"])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    sys.path.insert(0, os.getcwd())
    _setup_database()
    result = latency(args.rounds)
    print(f"taskqueue delay().get() round trip over {result['rounds']} calls (Redis broker, PostgreSQL results): "
          f"p50 {result['p50_ms']:.2f} ms, p95 {result['p95_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()
