"""Runs the comparison: one driver process per system, scenarios in alternation, medians of rounds.

Order: start every system (sequentially, then warm), measure idle memory, then for each round and
each scenario run every system in turn (the order rotates each round, so no system always goes
first); memory is read again right after each system's throughput run. After the rounds, the mixed
scenario runs once per system, one system at a time (it swaps in an 8-process worker group, so it
is not repeated every round). Failures are recorded per system and scenario and the run goes on.
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .common import LOG_DIR, REPO_ROOT, python


class DriverError(RuntimeError):
    pass


class Driver:
    """A `python -m benchmarks.driver SYSTEM` child, spoken to one JSON line at a time."""

    def __init__(self, system: str):
        self.system = system
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env["PYTHONPATH"] = str(REPO_ROOT)
        self.log = open(LOG_DIR / f"{system}.driver.log", "w")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen([python(), "-m", "benchmarks.driver", system], cwd=REPO_ROOT, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                        start_new_session=True)
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.worker_pgid: int | None = None

    def _read(self) -> None:
        for line in self.process.stdout:
            self.replies.put(json.loads(line))
        self.replies.put({"ok": False, "error": f"driver exited ({self.process.wait()})"})

    def request(self, op: str, timeout: float, **args: Any) -> dict:
        """Send one command; return its reply or raise DriverError (the driver is killed on timeout)."""
        if self.process.poll() is not None:
            raise DriverError(f"{self.system} driver is not running")
        self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.process.stdin.flush()
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise DriverError(f"{self.system}: {op} did not answer within {timeout} s") from None
        if reply.get("worker_pid"):  # the worker group may have been replaced (the mixed scenario)
            self.worker_pgid = reply["worker_pid"]
        if not reply["ok"]:
            raise DriverError(reply["error"]) if not reply.get("unsupported") else NotImplementedError(reply["error"])
        return reply["result"]

    def close(self, timeout: float = 60) -> None:
        try:
            if self.process.poll() is None:
                self.request("stop", timeout=timeout)
        except (DriverError, NotImplementedError, BrokenPipeError) as exc:
            print(f"  ! {self.system}: stop failed: {exc}", file=sys.stderr)
        finally:
            self.kill()
            self.log.close()

    def kill(self) -> None:
        """Last resort: SIGKILL the driver's and the workers' process groups (by the PIDs we know)."""
        import signal

        for pgid in (self.worker_pgid, self.process.pid):
            if pgid is None:
                continue
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass


SCENARIOS = ["throughput", "latency", "chord", "chain", "mixed"]


@dataclass
class Options:
    systems: list[str]
    n: int = 10_000
    rounds: int = 3
    latency_rounds: int = 300
    latency_budget_s: float = 10.0
    throughput_budget_s: float = 40.0
    chord_n: int = 1_000
    chain_n: int = 100
    warmup: int = 50
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    mixed_long_n: int = 100
    mixed_long_s: float = 1.0
    mixed_processes: int = 8
    mixed_long_rate: float = 6.0

    def mixed_timeout(self) -> float:
        """Reply deadline of one mixed run: two worker restarts, the submissions, the slow tasks, margin."""
        return (2 * (20 + 90 + 30) + self.mixed_long_n / self.mixed_long_rate + 10
                + self.mixed_long_n * self.mixed_long_s + 60 + 60)


@dataclass
class Samples:
    """Per system: scenario -> list of per-round results (or error strings)."""

    data: dict[str, dict[str, list]] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, system: str, scenario: str, result: Any) -> None:
        self.data.setdefault(system, {}).setdefault(scenario, []).append(result)

    def error(self, system: str, scenario: str, message: str) -> None:
        self.errors.setdefault(system, {})[scenario] = message


def _call(driver: Driver, samples: Samples, scenario: str, op: str, timeout: float, **args: Any) -> dict | None:
    try:
        result = driver.request(op, timeout=timeout, **args)
    except NotImplementedError as exc:
        samples.error(driver.system, scenario, f"n/a: {exc}")
        return None
    except DriverError as exc:
        samples.error(driver.system, scenario, str(exc))
        print(f"  ! {driver.system} {scenario}: {exc}", file=sys.stderr)
        return None
    samples.add(driver.system, scenario, result)
    return result


def start_all(options: Options, samples: Samples) -> tuple[dict[str, Driver], dict[str, Any]]:
    """Start each system in turn (so start-ups do not compete); drop those that fail."""
    drivers: dict[str, Driver] = {}
    startup: dict[str, Any] = {}
    for system in options.systems:
        print(f"starting {system} ...", flush=True)
        driver = drivers[system] = Driver(system)
        try:
            info = driver.request("start", timeout=240, warmup=options.warmup)
            driver.worker_pgid = info.get("worker_pid")
            startup[system] = info
        except (DriverError, NotImplementedError) as exc:
            print(f"  ! {system} did not start: {exc} (see {LOG_DIR}/{system}.*.log)", file=sys.stderr)
            samples.error(system, "start", str(exc))
            driver.kill()
            del drivers[system]
    return drivers, startup


def run_round(drivers: dict[str, Driver], order: list[str], samples: Samples, options: Options,
              sizes: dict[str, int]) -> None:
    """Every selected scenario once (but mixed), each for every system in `order` before the next scenario."""
    throughput_timeout = max(180.0, options.n / 10)
    if "throughput" in options.scenarios:
        for system in order:
            result = _call(drivers[system], samples, "throughput", "throughput", throughput_timeout, n=sizes[system])
            _call(drivers[system], samples, "memory_loaded", "memory", 30)
            if result:
                print(f"  {system:22} throughput {result['tasks_per_s']:8.0f} tasks/s "
                      f"(enqueue {result['enqueue_per_s']:.0f}/s, N={result['n']})", flush=True)
    if "latency" in options.scenarios:
        for system in order:
            result = _call(drivers[system], samples, "latency", "latency", options.latency_budget_s + 60,
                           rounds=options.latency_rounds, budget_s=options.latency_budget_s)
            if result:
                print(f"  {system:22} latency p50 {result['p50_ms']:7.2f} ms ({result['samples']} calls)", flush=True)
    for scenario, n in (("chord", options.chord_n), ("chain", options.chain_n)):
        if scenario not in options.scenarios:
            continue
        for system in order:
            result = _call(drivers[system], samples, scenario, scenario, 400, n=n)
            if result:
                print(f"  {system:22} {scenario} {result['seconds']:7.3f} s", flush=True)


def run_mixed(drivers: dict[str, Driver], order: list[str], samples: Samples, options: Options) -> None:
    """The mixed scenario, once per system, one system at a time."""
    print(f"mixed load: {options.mixed_long_n} x {options.mixed_long_s:g} s tasks at {options.mixed_long_rate:g}/s "
          f"on {options.mixed_processes} processes, small round trips in between", flush=True)
    for system in order:
        result = _call(drivers[system], samples, "mixed", "mixed", options.mixed_timeout(),
                       long_n=options.mixed_long_n, long_s=options.mixed_long_s,
                       processes=options.mixed_processes, long_rate=options.mixed_long_rate)
        if result:
            failed = f", {result['small_failed']} failed" if result["small_failed"] else ""
            print(f"  {system:22} small p50 {result['small_p50_ms']:7.2f} ms, p99 {result['small_p99_ms']:8.2f} ms "
                  f"({result['small_n']} calls{failed}); long makespan {result['makespan_s']:.2f} s", flush=True)


def run(options: Options) -> tuple[Samples, dict]:
    samples = Samples()
    drivers: dict[str, Driver] = {}
    try:
        drivers, startup = start_all(options, samples)
        live = list(drivers)
        time.sleep(2)
        for system in live:
            _call(drivers[system], samples, "memory_idle", "memory", 30)
        sizes = calibrate(drivers, samples, options) if "throughput" in options.scenarios else {}
        if set(options.scenarios) - {"mixed"}:
            for round_no in range(options.rounds):
                shift = round_no % len(live) if live else 0
                order = live[shift:] + live[:shift]
                print(f"round {round_no + 1}/{options.rounds} (order: {', '.join(order)})", flush=True)
                run_round(drivers, order, samples, options, sizes)
        if "mixed" in options.scenarios:
            run_mixed(drivers, live, samples, options)
    finally:
        for driver in drivers.values():
            driver.close()
    return samples, startup


def calibrate(drivers: dict[str, Driver], samples: Samples, options: Options) -> dict[str, int]:
    """Throughput batch size per system: N, or fewer (a multiple of 1,000) for a system whose rate on
    a 1,000-task probe means N would take longer than the budget. Keeps a full run bounded when one
    set-up is an order of magnitude slower; the N each system ran is recorded in the results."""
    sizes = {system: options.n for system in drivers}
    if options.n <= 1_000:
        return sizes
    for system, driver in drivers.items():
        probe = _call(driver, samples, "calibration", "throughput", 300, n=1_000)
        if probe:
            fits = int(probe["tasks_per_s"] * options.throughput_budget_s) // 1_000 * 1_000
            sizes[system] = max(1_000, min(options.n, fits))
        print(f"  {system:22} throughput batch: {sizes[system]:,} tasks"
              + (f" (probe {probe['tasks_per_s']:.0f} tasks/s)" if probe else ""), flush=True)
    return sizes


# -- summarising -----------------------------------------------------------------------------------

# metric -> (scenario, field, unit, higher_is_better)
METRICS: dict[str, tuple[str, str, str, bool]] = {
    "throughput_n": ("throughput", "n", "tasks", True),
    "throughput": ("throughput", "tasks_per_s", "tasks/s", True),
    "enqueue": ("throughput", "enqueue_per_s", "tasks/s", True),
    "latency_p50": ("latency", "p50_ms", "ms", False),
    "latency_p95": ("latency", "p95_ms", "ms", False),
    "latency_p99": ("latency", "p99_ms", "ms", False),
    "chord": ("chord", "seconds", "s", False),
    "chain": ("chain", "seconds", "s", False),
    "mixed_p50": ("mixed", "small_p50_ms", "ms", False),
    "mixed_p99": ("mixed", "small_p99_ms", "ms", False),
    "mixed_makespan": ("mixed", "makespan_s", "s", False),
    "rss_idle": ("memory_idle", "rss_mb", "MB", False),
    "rss_loaded": ("memory_loaded", "rss_mb", "MB", False),
    "uss_idle": ("memory_idle", "uss_mb", "MB", False),
    "uss_loaded": ("memory_loaded", "uss_mb", "MB", False),
}


def medians(samples: Samples, systems: list[str]) -> dict[str, dict[str, float | None]]:
    """metric -> system -> median over rounds (None when the scenario failed or does not apply)."""
    table: dict[str, dict[str, float | None]] = {}
    for metric, (scenario, key, _unit, _better) in METRICS.items():
        table[metric] = {}
        for system in systems:
            values = [r[key] for r in samples.data.get(system, {}).get(scenario, [])]
            table[metric][system] = statistics.median(values) if values else None
    return table
