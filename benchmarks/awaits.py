"""`python -m benchmarks awaits`: many tasks that wait on I/O, on one worker process.

`n` tasks that each wait `seconds` (taskqueue: an `async def` task awaiting `asyncio.sleep` on
`runworker -P asyncio -c 100`; the peers: a task calling `time.sleep` on their own one-process pool
for waiting work, 100 threads: `celery worker -P threads`, `huey_consumer -k thread`, `dramatiq
--processes 1 --threads`) are sent at once; the makespan runs from the first send until every
result is in. Each system in its own driver process, the order rotating each round; medians of
the rounds, and the worker group's memory after the last round.
"""

from __future__ import annotations

import statistics
import sys

from .runner import Driver, DriverError


def run(systems: list[str], n: int, seconds: float, concurrency: int, rounds: int) -> dict[str, dict]:
    drivers: dict[str, Driver] = {}
    results: dict[str, list[dict]] = {system: [] for system in systems}
    errors: dict[str, str] = {}
    try:
        for system in systems:
            print(f"starting {system} ...", flush=True)
            drivers[system] = Driver(system)
            drivers[system].request("start", timeout=240, warmup=20)
        for index in range(rounds):
            order = systems[index % len(systems):] + systems[:index % len(systems)]
            for system in order:
                if system in errors:
                    continue
                try:
                    result = drivers[system].request("awaits", timeout=n * seconds + 300, n=n, seconds=seconds,
                                                     concurrency=concurrency)
                except (DriverError, NotImplementedError) as exc:
                    errors[system] = str(exc)
                    print(f"  ! {system}: {exc}", file=sys.stderr)
                    continue
                results[system].append(result)
                print(f"  round {index + 1} {system}: {result['makespan_s']:.2f} s", flush=True)
    finally:
        for driver in drivers.values():
            driver.close()
    summary = {}
    for system, runs in results.items():
        if runs:
            summary[system] = {"makespan_s": statistics.median(r["makespan_s"] for r in runs),
                               "send_s": statistics.median(r["send_s"] for r in runs),
                               "uss_mb": runs[-1]["uss_mb"], "rss_mb": runs[-1]["rss_mb"], "rounds": len(runs)}
        else:
            summary[system] = {"error": errors.get(system, "no run")}
    return summary


def report(summary: dict[str, dict], n: int, seconds: float, concurrency: int) -> None:
    print(f"\n{n} tasks each waiting {seconds:g} s, sent at once, one worker process with {concurrency} places "
          f"(ideal makespan {seconds:g} s)")
    print(f"{'system':<14} {'makespan':>9} {'x ideal':>8} {'send':>7} {'USS MB':>7} {'RSS MB':>7}")
    for system, row in summary.items():
        if "error" in row:
            print(f"{system:<14} {row['error']}")
            continue
        print(f"{system:<14} {row['makespan_s']:>8.2f}s {row['makespan_s'] / seconds:>8.2f} {row['send_s']:>6.2f}s "
              f"{row['uss_mb']:>7.1f} {row['rss_mb']:>7.1f}")
    ours = summary.get("taskqueue", {})
    if "makespan_s" in ours:
        for system, row in summary.items():
            if system != "taskqueue" and "makespan_s" in row:
                print(f"taskqueue / {system}: makespan {ours['makespan_s'] / row['makespan_s']:.2f}, "
                      f"USS {ours['uss_mb'] / row['uss_mb']:.2f}")
