"""RabbitMQ (amqp://) in the fault tier: a private node (tests/helpers.RabbitServer) that the tests
restart under a draining worker, a worker SIGKILLed mid-task, and a commit while the node is down.
At-least-once as on the other brokers: nothing is lost, a task runs again only when it was in
flight at the fault, and workers and producers reconnect by themselves."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest

from taskqueue.brokers import reset_broker
from taskqueue.outages import is_outage
from tests.faults.conftest import FaultDatabase, run_in
from tests.faults.test_outages import _outage_seen, _runs
from tests.helpers import RabbitServer, report, wait_until
from tests.tasks import tally

pytestmark = [pytest.mark.slow, pytest.mark.amqp_only]

DRAIN = 400
DELAYED_EVERY = 4  # every fourth task has a countdown: some fall due while the node is down
AFTER = 100  # sent once the node is back
CONCURRENCY = 2
PREFETCH = 32  # settings.TASKQUEUE_PREFETCH: what one consumer may hold unacked at a fault


@pytest.fixture(scope="module")
def rabbit_server():
    server = RabbitServer().start()
    report("private RabbitMQ node started", start_s=server.started_in)
    yield server
    server.cleanup()


@pytest.fixture
def fault_rabbit(rabbit_server, settings) -> str:
    """A vhost of the test's own on the private node (running again if a test left it stopped);
    this test process sends its tasks there. Returns its URL."""
    if rabbit_server.pid is None:
        rabbit_server.start()
    url = rabbit_server.add_vhost(f"t-{uuid.uuid4().hex[:8]}")
    settings.TASKQUEUE_BROKER_URL = url
    reset_broker()
    yield url
    reset_broker()


def _countdown(i: int) -> float | None:
    """Half a second to four: most of them fall due during the restart (a drain fifth in, about
    five seconds down), the rest after it."""
    return 0.5 + (i // DELAYED_EVERY) % 8 * 0.5 if i % DELAYED_EVERY == 0 else None


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_rabbitmq_restart_during_a_drain_loses_nothing(rabbit_server, fault_rabbit, fault_db, fault_worker,
                                                         tmp_path, how):
    """Stopped (a clean shutdown) or SIGKILLed (a crash: what it confirmed is in its quorum queues'
    log on disk), then started again with its data."""
    runs = tmp_path / "runs"
    worker = fault_worker("-c", str(CONCURRENCY), db=fault_db, broker_url=fault_rabbit)
    consumers = worker.children_pids()
    ids = [tally.apply_async((str(runs), i, 0.02), countdown=_countdown(i)).id for i in range(DRAIN)]
    wait_until(lambda: len(_runs(runs)) >= DRAIN // 5, timeout=30, message="the drain under way")
    began = time.monotonic()
    getattr(rabbit_server, how)()
    assert len(_runs(runs)) < DRAIN, "the drain was over before the restart: nothing tested"
    refused_at = time.monotonic()
    with pytest.raises(Exception) as refused:  # the producer: a clear error, within a second or so
        tally.delay(str(runs), -1)
    refused_after = time.monotonic() - refused_at
    assert is_outage(refused.value) and refused_after < 5, (refused.value, refused_after)
    _outage_seen(worker, times=4)
    stored_before = fault_db.count("SUCCESS")
    rabbit_server.start()
    back = time.monotonic()
    wait_until(lambda: fault_db.count("SUCCESS") > stored_before, timeout=30, message="a result stored after it")
    recovery = time.monotonic() - back
    ids += [tally.delay(str(runs), i, 0.002).id for i in range(DRAIN, DRAIN + AFTER)]  # the producer reconnects
    _all_stored(fault_db, DRAIN + AFTER, worker, what=lambda: _drain_state(rabbit_server, fault_rabbit, runs))
    ran = _runs(runs)
    report(f"RabbitMQ {'SIGKILLed and started' if how == 'kill' else 'restarted'} during a drain (countdowns due "
           "while it is down)", sent=DRAIN + AFTER,
           lost=len(set(ids) - set(ran)), duplicate_runs=len(ran) - len(set(ran)), failed=fault_db.count("FAILURE"),
           outage_s=back - began, node_start_s=rabbit_server.started_in, recovery_s=recovery,
           producer_refused_after_s=refused_after, drained_after_s=time.monotonic() - back,
           consumers_replaced=len(set(worker.children_pids()) - set(consumers)))
    assert fault_db.states() == {"SUCCESS": DRAIN + AFTER}  # none failed or dead-lettered by the outage
    assert set(ran) == set(ids)  # nothing lost
    # RabbitMQ takes back what a closed connection held: a task runs twice only if it was in flight
    assert len(ran) - len(set(ran)) <= CONCURRENCY * PREFETCH
    assert worker.children_pids() == consumers, "a consumer died: " + worker.output
    assert "died" not in worker.output


def _all_stored(db: FaultDatabase, count: int, *workers, timeout: float = 60, what=lambda: "") -> None:
    try:
        wait_until(lambda: db.count("SUCCESS") == count, timeout=timeout, message=f"{count} tasks stored")
    except AssertionError as exc:
        failures = db.query("SELECT result FROM taskqueue_taskresult WHERE state = 'FAILURE' LIMIT 3")
        # the worker's log without its success lines: what it met on the way
        outputs = "\n".join("\n".join(line for line in worker.output.splitlines()
                                      if " succeeded in " not in line)[-8000:] for worker in workers)
        raise AssertionError(f"{exc}: {db.states()} {failures} {what()}\n{outputs}") from None


def _drain_state(server: RabbitServer, url: str, runs: Path) -> str:
    """For a drain that did not finish: the runs so far and the vhost's queues as the node sees them."""
    ran = _runs(runs)
    vhost = unquote(url.rsplit("/", 1)[1])
    queues = server.ctl("list_queues", "-p", vhost, "name", "messages_ready", "messages_unacknowledged", "consumers")
    busy = "\n".join(line for line in queues.splitlines() if not line.rstrip().endswith("\t0\t0\t0"))
    return f"runs {len(ran)} ({len(set(ran))} distinct); queues (name, ready, unacked, consumers):\n{busy}"


def _worker_of(db: FaultDatabase, task_id: str) -> str | None:
    rows = db.query("SELECT worker FROM taskqueue_taskresult WHERE task_id = %s AND state = 'SUCCESS'", (task_id,))
    return rows[0][0] if rows else None


def test_a_sigkilled_worker_s_task_comes_back_and_runs_on_another(fault_rabbit, fault_db, fault_worker, tmp_path):
    """No lease to run out: the killed worker's connections close, RabbitMQ hands its message out
    again at once, and the other worker runs it."""
    runs = tmp_path / "runs"
    doomed = fault_worker("-c", "1", "--hostname", "doomed@rabbit", db=fault_db, broker_url=fault_rabbit)
    task_id = tally.delay(str(runs), 1, 4.0).id
    wait_until(lambda: _runs(runs), timeout=20, message="the task started on the first worker")
    fault_worker("-c", "1", "--hostname", "other@rabbit", db=fault_db, broker_url=fault_rabbit)
    doomed.kill()  # the supervisor and its consumer at once: nothing stores or gives back anything
    killed = time.monotonic()
    wait_until(lambda: len(_runs(runs)) == 2, timeout=20, message="the task started again on the other worker")
    handed_over = time.monotonic() - killed
    wait_until(lambda: _worker_of(fault_db, task_id), timeout=20, message="the task stored")
    report("RabbitMQ: a SIGKILLed worker's task run by another", sent=1, lost=0, duplicate_runs=1,
           failed=fault_db.count("FAILURE"), handed_over_after_s=handed_over)
    assert _worker_of(fault_db, task_id) == "other@rabbit"
    assert fault_db.states() == {"SUCCESS": 1} and _runs(runs) == [task_id, task_id]


def test_a_consumer_sigkilled_during_a_drain_loses_nothing(fault_rabbit, fault_db, fault_worker, tmp_path):
    """A prefork child killed mid-batch: what it held comes back (counted once) and runs on its
    sibling or its replacement."""
    runs = tmp_path / "runs"
    worker = fault_worker("-c", str(CONCURRENCY), db=fault_db, broker_url=fault_rabbit)
    consumers = worker.children_pids()
    ids = [tally.delay(str(runs), i, 0.01).id for i in range(DRAIN)]
    wait_until(lambda: len(_runs(runs)) >= DRAIN // 5, timeout=30, message="the drain under way")
    os.kill(consumers[0], signal.SIGKILL)
    assert len(_runs(runs)) < DRAIN, "the drain was over before the kill: nothing tested"
    _all_stored(fault_db, DRAIN, worker)
    ran = _runs(runs)
    report("RabbitMQ: a consumer SIGKILLed during a drain", sent=DRAIN, lost=len(set(ids) - set(ran)),
           duplicate_runs=len(ran) - len(set(ran)), failed=fault_db.count("FAILURE"),
           consumers_replaced=len(set(worker.children_pids()) - set(consumers)))
    assert fault_db.states() == {"SUCCESS": DRAIN}
    assert set(ran) == set(ids)
    assert len(ran) - len(set(ran)) <= PREFETCH  # at most what the killed consumer held
    wait_until(lambda: len(worker.children_pids()) == CONCURRENCY, timeout=10, message="the consumer replaced")


def test_a_commit_while_rabbitmq_is_down_is_relayed_from_the_outbox(rabbit_server, fault_rabbit, fault_db,
                                                                    fault_worker, tmp_path: Path):
    runs = tmp_path / "runs"
    rabbit_server.stop()
    # a process on the fault database commits a send: the caller does not fail, the row waits
    output = run_in(fault_db, fault_rabbit, "from django.db import transaction\nfrom tests.tasks import tally\n"
                    f"with transaction.atomic():\n    print('id:', tally.delay({str(runs)!r}, 7).id)")
    task_id = next(line for line in output.splitlines() if line.startswith("id: ")).split()[1]
    assert fault_db.query("SELECT key FROM taskqueue_outboxmessage") == [(task_id,)]
    rabbit_server.start()
    back = time.monotonic()
    fault_worker("-c", "1", db=fault_db, broker_url=fault_rabbit)
    wait_until(lambda: fault_db.count("SUCCESS") == 1, timeout=30, message="the task relayed and run")
    report("delay() inside atomic() while RabbitMQ is down, then RabbitMQ back and a worker started", sent=1,
           lost=0, duplicate_runs=len(_runs(runs)) - 1, failed=0, recovery_s=time.monotonic() - back)
    assert _runs(runs) == [task_id]
    assert fault_db.query("SELECT key FROM taskqueue_outboxmessage") == []
