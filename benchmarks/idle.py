"""`python -m benchmarks idle`: what an idle worker costs, per broker.

One system at a time (so none disturbs another's figure): start its `runworker -c 2`, make 20
round trips, wait 2 s, then read the CPU time of the worker's processes (every thread) before and
after S seconds in which nothing is sent; the share of one core is their difference over S. Then
one more round trip, the first after the idle spell, is timed beside the median of the 20 warm
ones: a worker that sleeps deeply must still wake at once. Results in benchmarks/results/idle.json.
"""

from __future__ import annotations

import json
import sys

from .adapters import DATABASE_SYSTEMS
from .common import RESULTS_DIR, rabbitmq_problem
from .runner import Driver, DriverError

DEFAULT = ["taskqueue", *DATABASE_SYSTEMS, "taskqueue-amqp"]


def main(requested: str | None, seconds: float) -> None:
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
            results[system] = driver.request("idle", timeout=seconds + 120, seconds=seconds)
        except (DriverError, NotImplementedError) as exc:
            results[system] = {"error": str(exc)}
        finally:
            driver.close()
        print(f"{system}: {results[system]}", flush=True)
    print()
    print(format_table(results))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "idle.json").write_text(json.dumps({"seconds": seconds, "results": results}, indent=2))
    print(f"\nwrote {RESULTS_DIR / 'idle.json'}")
    if any("error" in r for r in results.values()):
        sys.exit(1)


def format_table(results: dict[str, dict]) -> str:
    lines = [f"{'system':18s} {'idle CPU (% of a core)':>24s} {'first after idle (ms)':>22s} "
             f"{'warm p50 (ms)':>14s}  set-up"]
    for system, r in results.items():
        if "error" in r:
            lines.append(f"{system:18s} failed: {r['error']}")
            continue
        lines.append(f"{system:18s} {r['cpu_percent']:>24.2f} {r['first_round_trip_ms']:>22.2f} "
                     f"{r['warm_round_trip_p50_ms']:>14.2f}  {r['description']}")
    return "\n".join(lines)
