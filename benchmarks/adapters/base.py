"""The adapter interface: what each system must provide, and the scenario timings built on it.

An adapter runs inside its own driver process (see ``benchmarks.driver``), so each system can
configure Django (or not) its own way. Subclasses implement the small primitives (start workers,
enqueue N, count stored results, one round trip, chord, chain, one slow task and waiting for slow
tasks); `Adapter` turns them into the measured scenarios, so every system is timed by the same code.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..common import (
    LOG_DIR,
    WorkerGroup,
    drop_database,
    drop_sqlite_file,
    percentile,
    recreate_database,
    recreate_sqlite_file,
)


class NotSupported(Exception):
    """The system has no equivalent of this scenario (e.g. Dramatiq has no chord)."""


class Adapter:
    name: str = ""
    description: str = ""

    def __init__(self) -> None:
        self.workers: WorkerGroup | None = None

    # -- primitives each system implements -----------------------------------------------------

    def setup(self) -> None:
        """Create databases/keys and configure the client (runs once, before the workers)."""

    def worker_group(self, processes: int = 2) -> WorkerGroup:
        """The (not yet started) worker command with `processes` worker processes (2 in the rounds)."""
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

    def enqueue_slow(self, seconds: float) -> Any:
        """Enqueue one task that sleeps `seconds` and returns; return what `wait_slow` needs."""
        raise NotSupported("no slow task")

    def wait_slow(self, handles: list[Any], timeout: float) -> None:
        """Wait until every task enqueued by `enqueue_slow` has finished; raise TimeoutError after `timeout` s."""
        raise NotSupported("no slow task")

    def teardown(self) -> None:
        """Drop databases and keys created by `setup` (after the workers stopped)."""

    @staticmethod
    def wait_each(handles: list[Any], timeout: float, wait_one: Callable[[Any, float], Any]) -> None:
        """Call `wait_one(handle, seconds_left)` for each handle, all within one `timeout` deadline."""
        deadline = time.monotonic() + timeout
        for done, handle in enumerate(handles):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"only {done}/{len(handles)} slow tasks finished within {timeout} s")
            wait_one(handle, left)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, warmup: int = 50, timeout: float = 90, processes: int = 2) -> dict:
        """Start the workers and wait until `warmup` round trips have succeeded."""
        started = time.perf_counter()
        self.workers = self.worker_group(processes).start()
        self.wait_ready(timeout)
        ready = time.perf_counter() - started
        for i in range(warmup):
            self.round_trip(i)
        return {"ready_s": ready, "worker_pid": self.workers.process.pid}

    def wait_ready(self, timeout: float) -> None:
        """Retry a first round trip (the readiness check) until it succeeds; re-raise after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            self.workers.check_alive()
            try:
                self.round_trip(0)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

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

    def mixed(self, long_n: int = 100, long_s: float = 1.0, processes: int = 8, long_rate: float = 6.0,
              warmup: int = 20, ready_timeout: float = 90) -> dict:
        """Small round trips while `long_n` slow tasks arrive, on a `processes`-process worker group.

        The 2-process workers are replaced by a `processes`-process group for the duration. From this
        one thread, the slow tasks (each sleeps `long_s`) are submitted at `long_rate` per second, on
        a fixed schedule; between two submissions, sequential `round_trip()` calls are timed. With the
        defaults about 6 of the 8 processes are busy with slow tasks and some capacity stays free, so
        a small task is only held up if the system reserved it behind a slow one. Small round trips
        stop once the last slow task is submitted; then every slow task is awaited (bounded). The
        makespan runs from the first submission until all slow tasks are done. Afterwards the
        2-process group is started again, so the system is left as the rounds expect it.
        """
        self.stop()
        samples: list[float] = []
        failures: list[str] = []
        try:
            self.workers = self.worker_group(processes).start()
            self.wait_ready(ready_timeout)
            for i in range(warmup):
                self.round_trip(i)
            handles: list[Any] = []
            interval = 1.0 / long_rate
            first = time.perf_counter()
            i = 0
            for k in range(long_n):
                submit_at = first + k * interval
                while time.perf_counter() < submit_at:
                    i += 1
                    started = time.perf_counter()
                    try:
                        self.round_trip(i)
                    except Exception as exc:  # e.g. the round trip's own 10 s timeout: counted, time kept
                        failures.append(f"{type(exc).__name__}: {exc}"[:200])
                        self.workers.check_alive()
                    samples.append((time.perf_counter() - started) * 1000)
                handles.append(self.enqueue_slow(long_s))
            submitted = time.perf_counter()
            self.wait_slow(handles, timeout=long_n * long_s + 60)  # bounded even if they ran one at a time
            makespan = time.perf_counter() - first
        finally:
            self.stop()
            self.workers = self.worker_group().start()
            self.wait_ready(ready_timeout)
        if not samples:
            raise RuntimeError("no small round trip fitted between the slow tasks' submissions")
        samples.sort()
        return {"long_n": long_n, "long_s": long_s, "processes": processes, "long_rate": long_rate,
                "small_n": len(samples), "small_failed": len(failures), "first_failure": failures[:1],
                "small_p50_ms": statistics.median(samples), "small_p95_ms": percentile(samples, 0.95),
                "small_p99_ms": percentile(samples, 0.99), "small_max_ms": samples[-1],
                "submit_s": submitted - first, "makespan_s": makespan,
                "worker_pid": self.workers.process.pid}

    def awaits(self, n: int = 100, seconds: float = 1.0, concurrency: int = 100, warmup: int = 20,
               ready_timeout: float = 90) -> dict:
        """`n` tasks that each wait `seconds` on I/O, sent at once to one worker process with
        `concurrency` places for waiting tasks (`io_worker_group`): the makespan from the first send
        until every result is in, and the group's memory then. Leaves that group running."""
        self.stop()
        self.workers = self.io_worker_group(concurrency).start()
        self.wait_ready(ready_timeout)
        for i in range(warmup):
            self.round_trip(i)
        first = time.perf_counter()
        handles = [self.enqueue_wait(seconds) for _ in range(n)]
        sent = time.perf_counter()
        self.wait_slow(handles, timeout=n * seconds + 60)  # bounded even if they ran one at a time
        makespan = time.perf_counter() - first
        return {"n": n, "seconds": seconds, "concurrency": concurrency, "send_s": sent - first,
                "makespan_s": makespan, **self.workers.memory(), "worker_pid": self.workers.process.pid}

    def io_worker_group(self, concurrency: int) -> WorkerGroup:
        """One worker process running up to `concurrency` waiting tasks at once (the system's own
        way: an event loop, or threads)."""
        raise NotSupported(f"{self.name} has no single-process pool for waiting tasks")

    def enqueue_wait(self, seconds: float) -> Any:
        """Send one task that waits `seconds` on I/O; the handle `wait_slow` takes."""
        return self.enqueue_slow(seconds)

    def memory(self) -> dict:
        return self.workers.memory()

    def idle(self, seconds: float = 20.0, settle: float = 2.0, warm: int = 20, pauses: int = 0,
             pause_s: float = 3.0) -> dict:
        """The worker group's CPU while nothing is sent, as a share of one core; then the round
        trip of the first task after that spell, beside the median of `warm` ones before it; then
        `pauses` more first round trips, each after `pause_s` seconds of nothing (one sample after
        an idle spell is mostly noise)."""
        warm_ms = []
        for i in range(warm):
            started = time.perf_counter()
            self.round_trip(i)
            warm_ms.append((time.perf_counter() - started) * 1000)
        time.sleep(settle)  # the warm-up's last acks and writes are not idle time
        processes = self.workers.processes()
        before = {p.pid: cpu_seconds([p]) for p in processes}
        started = time.monotonic()
        time.sleep(seconds)  # the measured spell itself
        wall = time.monotonic() - started
        by_process = {}
        for p in processes:
            try:
                name = " ".join(p.cmdline())[-60:]
            except Exception:
                name = "?"
            by_process[str(p.pid)] = {"cmd": name, "cpu_percent": 100 * (cpu_seconds([p]) - before[p.pid]) / wall}
        used = sum(entry["cpu_percent"] for entry in by_process.values()) * wall / 100
        started = time.perf_counter()
        self.round_trip(warm)
        first_ms = (time.perf_counter() - started) * 1000
        after_pauses_ms = []
        for i in range(pauses):
            time.sleep(pause_s)  # nothing sent: the pause is the measurement
            started = time.perf_counter()
            self.round_trip(warm + 1 + i)
            after_pauses_ms.append((time.perf_counter() - started) * 1000)
        return {"description": self.description, "cpu_percent": 100 * used / wall, "seconds": wall,
                "processes": len(processes), "by_process": by_process,
                "first_round_trip_ms": first_ms, "warm_round_trip_p50_ms": statistics.median(warm_ms),
                "pause_s": pause_s, "after_pause_ms": after_pauses_ms,
                "after_pause_p50_ms": statistics.median(after_pauses_ms) if after_pauses_ms else None}


class ThrowawayDatabase:
    """For an adapter (listed before `Adapter` or its subclass) whose system keeps its queue or
    results in a throwaway PostgreSQL database of its own, `db_name`: `recreate_database` drops and
    creates it, `drop_database` drops it.

    The client and the workers find it through the environment, set when the adapter is built (the
    workers it starts inherit the driver's): `environment()`, by default the database's name in
    `db_env` and DJANGO_SETTINGS_MODULE `django_settings`; a system without Django (`django_settings`
    None) has DJANGO_SETTINGS_MODULE unset instead."""

    db_name: str = ""
    db_env: str = ""
    django_settings: str | None = None

    def __init__(self) -> None:
        super().__init__()
        if self.django_settings is None:
            os.environ.pop("DJANGO_SETTINGS_MODULE", None)
        os.environ.update(self.environment())

    def environment(self) -> dict[str, str]:
        """The variables this system's client and workers read (a subclass adds its own)."""
        env = {self.db_env: self.db_name}
        if self.django_settings is not None:
            env["DJANGO_SETTINGS_MODULE"] = self.django_settings
        return env

    def recreate_database(self) -> None:
        recreate_database(self.db_name)

    def drop_database(self) -> None:
        drop_database(self.db_name)


class SqliteFile(ThrowawayDatabase):
    """The same system on one SQLite file instead of the PostgreSQL database: `path`, in the logs
    folder and named after `db_name`, given to the client and workers in `sqlite_env` (listed before
    the PostgreSQL variant's adapter, whose `environment()` it extends)."""

    sqlite_env: str = ""

    @property
    def path(self) -> Path:
        return LOG_DIR / f"{self.db_name}.sqlite3"

    def environment(self) -> dict[str, str]:
        return {**super().environment(), self.sqlite_env: str(self.path)}

    def recreate_database(self) -> None:
        recreate_sqlite_file(self.path)

    def drop_database(self) -> None:
        drop_sqlite_file(self.path)


def cpu_seconds(processes: list) -> float:
    """CPU time of these processes, every thread: from /proc/<pid>/task/*/schedstat (nanoseconds)
    where Linux has it, else psutil's user + system time (clock ticks)."""
    total = 0.0
    for process in processes:
        try:
            tasks = os.listdir(f"/proc/{process.pid}/task")
            for tid in tasks:
                with open(f"/proc/{process.pid}/task/{tid}/schedstat") as stat:
                    total += int(stat.read().split()[0]) / 1e9
        except FileNotFoundError:  # a thread that ended, or no /proc: the coarser figure
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except Exception:
                pass
    return total
