"""Outages are not deaths: a worker holds what it has through a database or broker outage, loses
nothing, runs a task twice at most when it was running at the moment of the fault, and keeps
every consumer it started."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from taskqueue.testing import WorkerProcess
from tests.faults.conftest import FaultDatabase, run_in
from tests.helpers import report, wait_until
from tests.tasks import async_tally, tally

# Private PostgreSQL and Redis servers, each test choosing its broker: nothing of the run's own.
pytestmark = [pytest.mark.slow, pytest.mark.any_broker, pytest.mark.any_database]

DRAIN = 2000
CONCURRENCY = 2


def _runs(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _send_drain(runs: Path, db: FaultDatabase, broker_url: str, task=tally) -> list[str]:
    if broker_url == "django://":  # the messages go into the fault database: send them from a process on it
        send = f"print('ids:', *(tally.delay({str(runs)!r}, i, 0.002).id for i in range({DRAIN})))"
        output = run_in(db, broker_url, "from tests.tasks import tally\n" + send)  # Django's shell talks too
        return next(line for line in output.splitlines() if line.startswith("ids: ")).split()[1:]
    return [task.delay(str(runs), i, 0.002).id for i in range(DRAIN)]


def _drain_through(name: str, fault_worker, db: FaultDatabase, broker_url: str, tmp_path: Path,
                   break_and_restore: Callable[[WorkerProcess, Path], None],
                   env: dict[str, str] | None = None, pool: tuple[str, ...] = (), concurrency: int = CONCURRENCY,
                   task=tally) -> None:
    """Drain DRAIN tasks on `concurrency` consumers (or, with `pool`, tasks at once), break and
    restore the servers a fifth of the way in, then check that nothing was lost or failed and no
    consumer died."""
    runs = tmp_path / "runs"
    worker = fault_worker(*pool, "-c", str(concurrency), db=db, broker_url=broker_url, env=env)
    consumers = worker.children_pids()
    ids = _send_drain(runs, db, broker_url, task)
    wait_until(lambda: len(_runs(runs)) >= DRAIN // 5, timeout=30, message="the drain under way")
    fault = Fault(db)
    break_and_restore(worker, runs)
    fault.restored_now()
    _check_drain(name, db, worker, runs, ids, consumers, fault, concurrency)


class Fault:
    """Times one fault: from when it starts until the servers are back, then until the worker
    stores its next result."""

    def __init__(self, db: FaultDatabase):
        self.db = db
        self.began = time.monotonic()
        self.stored_before = 0
        self.restored = self.began

    def restored_now(self) -> None:
        self.restored = time.monotonic()
        self.stored_before = len(self.db.query("SELECT 1 FROM taskqueue_taskresult WHERE state = 'SUCCESS'") or [])

    def recovery(self) -> float:
        wait_until(lambda: self.db.count("SUCCESS") > self.stored_before or self.db.count("SUCCESS") == DRAIN,
                   timeout=30, message="a result stored after the fault")
        return time.monotonic() - self.restored


def _check_drain(name: str, db: FaultDatabase, worker: WorkerProcess, runs: Path, ids: list[str],
                 consumers: list[int], fault: Fault, concurrency: int) -> None:
    recovery = fault.recovery()
    wait_until(lambda: db.count("SUCCESS") == DRAIN, timeout=90, message="every task stored as SUCCESS")
    states = db.states()
    ran = _runs(runs)
    report(name, sent=DRAIN, lost=len(set(ids) - set(ran)), duplicate_runs=len(ran) - len(set(ran)),
           failed=states.get("FAILURE", 0), outage_s=fault.restored - fault.began, recovery_s=recovery,
           consumers_replaced=len(set(worker.children_pids()) - set(consumers)))
    assert states == {"SUCCESS": DRAIN}  # none FAILED by the outage, none left behind
    assert set(ran) == set(ids)  # nothing lost
    assert len(ran) - len(set(ran)) <= concurrency, "more duplicate runs than tasks running at the fault"
    assert worker.children_pids() == consumers, "a consumer died: " + worker.output
    assert "died" not in worker.output


def _outage_seen(worker: WorkerProcess, times: int = 8) -> None:
    """Wait until the worker has met the outage `times` times (its retries back off: a few seconds)."""
    wait_until(lambda: worker.output.count("onnection problem") >= times, timeout=30, message="the outage noticed")


def _restart(pg_server, times: int = 20):
    def restart(worker: WorkerProcess, runs: Path) -> None:
        pg_server.stop()
        _outage_seen(worker, times=times)  # it noticed, and holds: some seconds
        pg_server.start()

    return restart


def test_a_postgres_restart_during_a_drain_loses_nothing(pg_server, fault_db, fault_redis, fault_worker, tmp_path):
    _drain_through("PostgreSQL restart during a drain (Redis broker)", fault_worker, fault_db, fault_redis.url,
                   tmp_path, _restart(pg_server))


def test_a_postgres_restart_during_a_drain_on_the_asyncio_pool_loses_nothing(pg_server, fault_db, fault_redis,
                                                                               fault_worker, tmp_path):
    _drain_through("PostgreSQL restart during a drain (asyncio pool, Redis broker)", fault_worker, fault_db,
                   fault_redis.url, tmp_path, _restart(pg_server, times=6), pool=("-P", "asyncio"),
                   concurrency=20, task=async_tally)


def test_a_postgres_restart_during_a_drain_on_the_database_broker_loses_nothing(pg_server, fault_db, fault_worker,
                                                                                 tmp_path):
    _drain_through("PostgreSQL restart during a drain (database broker)", fault_worker, fault_db, "django://",
                   tmp_path, _restart(pg_server))


@pytest.mark.parametrize("broker", ["redis", "django"])
def test_cut_database_connections_during_a_drain_lose_nothing(pg_server, fault_db, fault_redis, fault_worker,
                                                               tmp_path, broker):
    def cut_three_times(worker, runs):
        for share in (4, 3, 2):
            wait_until(lambda share=share: len(_runs(runs)) >= DRAIN // share, timeout=30, message="drain under way")
            pg_server.terminate_backends(fault_db.name)

    broker_url = fault_redis.url if broker == "redis" else "django://"
    _drain_through(f"pg_terminate_backend three times during a drain ({broker} broker)", fault_worker, fault_db,
                   broker_url, tmp_path, cut_three_times)


def test_a_redis_restart_during_a_drain_loses_nothing(fault_db, fault_redis, fault_worker, tmp_path):
    def restart(worker, runs):
        fault_redis.stop()
        _outage_seen(worker)
        fault_redis.start()  # AOF on: what Redis acknowledged comes back

    _drain_through("Redis restart during a drain (AOF on)", fault_worker, fault_db, fault_redis.url, tmp_path, restart)


def test_a_redis_restart_during_a_drain_on_the_asyncio_pool_loses_nothing(fault_db, fault_redis, fault_worker,
                                                                          tmp_path):
    def restart(worker, runs):
        fault_redis.stop()
        _outage_seen(worker, times=4)
        fault_redis.start()

    _drain_through("Redis restart during a drain (AOF on, asyncio pool)", fault_worker, fault_db, fault_redis.url,
                   tmp_path, restart, pool=("-P", "asyncio"), concurrency=20, task=async_tally)


def test_a_paused_redis_during_a_drain_loses_nothing(fault_db, fault_redis, fault_worker, tmp_path):
    def pause(worker, runs):
        fault_redis.pause()  # SIGSTOP: connections stay open, nothing answers
        _outage_seen(worker, times=2)  # each try waits out the socket timeout (TASKQUEUE_BROKER_TIMEOUT)
        fault_redis.resume()

    # a 1 s broker timeout instead of 5 s: the same outage, two tries noticed in seconds, not ten
    _drain_through("Redis paused (SIGSTOP) during a drain", fault_worker, fault_db, fault_redis.url, tmp_path, pause,
                   env={"TASKQUEUE_BROKER_TIMEOUT": "1"})


def test_a_consumer_killed_while_redis_is_down_is_replaced(fault_db, fault_redis, fault_worker, tmp_path):
    worker = fault_worker("-c", str(CONCURRENCY), db=fault_db, broker_url=fault_redis.url)
    consumers = worker.children_pids()
    fault_redis.stop()
    fault = Fault(fault_db)
    os.kill(consumers[0], signal.SIGKILL)
    wait_until(lambda: len(set(worker.children_pids()) - set(consumers)) == 1, timeout=15,
               message="a replacement consumer, with Redis still down")
    replaced_after = time.monotonic() - fault.began
    fault_redis.start()
    runs = tmp_path / "runs"
    ids = _send_drain(runs, fault_db, fault_redis.url)
    wait_until(lambda: fault_db.count("SUCCESS") == DRAIN, timeout=60, message="the drain after Redis came back")
    ran = _runs(runs)
    report("Consumer SIGKILLed while Redis is down, then a drain", sent=DRAIN, lost=len(set(ids) - set(ran)),
           duplicate_runs=len(ran) - len(set(ran)), failed=fault_db.count("FAILURE"), replaced_after_s=replaced_after,
           consumers_replaced=1)
    assert set(ran) == set(ids) and len(worker.children_pids()) == CONCURRENCY


def _long_task_through(outage, *, db, worker, broker_url: str, runs, title: str) -> tuple:
    """An 8 s task on a busy worker, a second worker idle, then `outage(busy, idle)` (which stops
    and restarts a server): the task is stored once, never taken over by the idle worker."""
    busy = worker("-c", "1", db=db, broker_url=broker_url)
    run_in(db, broker_url, f"from tests.tasks import tally; tally.delay({str(runs)!r}, 1, 8.0)")
    wait_until(lambda: _runs(runs), timeout=20, message="the long task started")
    idle = worker("-c", "1", db=db, broker_url=broker_url)
    fault = Fault(db)
    outage(busy, idle)
    fault.restored_now()
    wait_until(lambda: db.count("SUCCESS") == 1, timeout=40, message="the long task stored")
    report(title, sent=1, lost=0, duplicate_runs=len(_runs(runs)) - 1, failed=db.count("FAILURE"),
           outage_s=fault.restored - fault.began)
    assert len(_runs(runs)) == 1, "the long task ran twice: " + busy.output + idle.output
    return busy, idle


def test_a_database_broker_worker_keeps_its_long_task_through_a_postgres_restart(pg_server, fault_db,
                                                                                  fault_worker, tmp_path):
    """Its supervisor reconnects and keeps heartbeating, so a second worker never takes the task."""
    def restart(busy, idle):
        pg_server.stop()
        assert busy.wait_for_output("failed", timeout=15)  # a heartbeat failed: the outage was seen
        pg_server.start()

    _long_task_through(restart, db=fault_db, worker=fault_worker, broker_url="django://", runs=tmp_path / "runs",
                       title="8 s task, PostgreSQL restart, a second worker idle (database broker)")
    # the supervisor of the idle worker heartbeats again after the restart: its consumer is fresh
    wait_until(lambda: fault_db.query("SELECT count(*) FROM taskqueue_brokerconsumer WHERE last_heartbeat"
                                      " > now() - interval '2 seconds'") == [(2,)], timeout=10,
               message="both workers heartbeating after the restart")


def test_a_long_task_is_not_taken_over_after_a_redis_outage_longer_than_its_lease(fault_db, fault_redis,
                                                                                   fault_worker, tmp_path):
    """After the outage every worker's lease looks stale; each heartbeats again before any takes over."""
    def outage_longer_than_the_lease(busy, idle):
        fault_redis.stop()
        assert idle.wait_for_output("Heartbeat failed", timeout=15)
        # heartbeats come every fifth of the lease: eight failed ones span more than a lease
        wait_until(lambda: idle.output.count("Heartbeat failed") >= 8, timeout=30,
                   message="an outage longer than the lease")
        fault_redis.start()

    _long_task_through(outage_longer_than_the_lease, db=fault_db, worker=fault_worker, broker_url=fault_redis.url,
                       runs=tmp_path / "runs", title="8 s task, Redis down longer than the lease, a second worker idle")
