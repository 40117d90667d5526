"""The adapter interface: what each system must provide, and the scenario timings built on it.

An adapter runs inside its own driver process (see ``benchmarks.driver``), so each system can
configure Django (or not) its own way. Subclasses implement the small primitives (start workers,
enqueue N, count stored results, one round trip, chord, chain); `Adapter` turns them into the
measured scenarios, so every system is timed by the same code.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from ..common import WorkerGroup, percentile


class NotSupported(Exception):
    """The system has no equivalent of this scenario (e.g. Huey has no chord)."""


class Adapter:
    name: str = ""
    description: str = ""

    def __init__(self) -> None:
        self.workers: WorkerGroup | None = None

    # -- primitives each system implements -----------------------------------------------------

    def setup(self) -> None:
        """Create databases/keys and configure the client (runs once, before the workers)."""

    def worker_group(self) -> WorkerGroup:
        """The (not yet started) worker command: 2 worker processes."""
        raise NotImplementedError

    def enqueue(self, n: int) -> Any:
        """Enqueue n `add(i, i)` tasks; return whatever `count_done` needs."""
        raise NotImplementedError

    def count_done(self, handle: Any) -> int:
        """How many of the tasks enqueued by `enqueue` have their result stored."""
        raise NotImplementedError

    def reset_results(self) -> None:
        """Forget stored results before a throughput round (not timed)."""

    def round_trip(self, i: int) -> None:
        """`add.delay(i, i).get()` (or its equivalent); assert the value."""
        raise NotImplementedError

    def run_chord(self, n: int) -> int:
        """Header of n `add(i, i)`, body `tsum`: return the body's result."""
        raise NotSupported("no chord primitive")

    def run_chain(self, n: int) -> int:
        """n `add` steps starting from add(0, 1): return the final result (n)."""
        raise NotSupported("no chain primitive")

    def teardown(self) -> None:
        """Drop databases and keys created by `setup` (after the workers stopped)."""

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, warmup: int = 50, timeout: float = 90) -> dict:
        """Start the workers and wait until `warmup` round trips have succeeded."""
        started = time.perf_counter()
        self.workers = self.worker_group().start()
        deadline = time.monotonic() + timeout
        while True:  # the first round trip doubles as the readiness check
            self.workers.check_alive()
            try:
                self.round_trip(0)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        ready = time.perf_counter() - started
        for i in range(warmup):
            self.round_trip(i)
        return {"ready_s": ready, "worker_pid": self.workers.process.pid}

    def stop(self) -> None:
        if self.workers is not None:
            self.workers.stop()

    # -- scenarios -------------------------------------------------------------------------------

    def throughput(self, n: int, timeout: float | None = None) -> dict:
        """Enqueue n tasks, then wait until every result is stored: end-to-end and enqueue rates."""
        self.reset_results()
        timeout = timeout if timeout is not None else max(120.0, n / 20)
        started = time.perf_counter()
        handle = self.enqueue(n)
        enqueued = time.perf_counter()
        deadline = time.monotonic() + timeout
        done = 0
        while done < n:
            done = self.count_done(handle)
            if done >= n:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done}/{n} results stored after {timeout} s")
            self.workers.check_alive()
            time.sleep(0.02)
        finished = time.perf_counter()
        return {"n": n, "tasks_per_s": n / (finished - started), "enqueue_per_s": n / (enqueued - started),
                "seconds": finished - started}

    def latency(self, rounds: int, budget_s: float) -> dict:
        """Up to `rounds` sequential round trips (stopping early after `budget_s`): percentiles in ms."""
        samples: list[float] = []
        stop_at = time.monotonic() + budget_s
        for i in range(rounds):
            started = time.perf_counter()
            self.round_trip(i)
            samples.append((time.perf_counter() - started) * 1000)
            if time.monotonic() > stop_at:
                break
        samples.sort()
        return {"samples": len(samples), "p50_ms": statistics.median(samples), "p95_ms": percentile(samples, 0.95),
                "p99_ms": percentile(samples, 0.99)}

    def chord(self, n: int) -> dict:
        started = time.perf_counter()
        value = self.run_chord(n)
        seconds = time.perf_counter() - started
        assert value == n * (n - 1), value  # sum of 2i for i < n
        return {"n": n, "seconds": seconds}

    def chain(self, n: int) -> dict:
        started = time.perf_counter()
        value = self.run_chain(n)
        seconds = time.perf_counter() - started
        assert value == n, value
        return {"n": n, "seconds": seconds}

    def memory(self) -> dict:
        return self.workers.memory()
