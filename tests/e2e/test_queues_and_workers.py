"""The admin's queues and workers pages and `taskqueue status` against real workers, on the run's
broker (Redis or the database broker)."""

import json
import re
import time
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils.html import escape

from taskqueue import AsyncResult, control, operations, states
from taskqueue.brokers import get_broker
from taskqueue.models import PausedQueue, WorkerRecord
from taskqueue.testing import start_worker
from taskqueue.worker.consumer import IDLE_WAIT
from taskqueue.worker.controls import READ_EVERY
from tests.helpers import held, wait_until, waits_in
from tests.models import Run
from tests.tasks import add, record

pytestmark = [pytest.mark.slow, pytest.mark.any_database]  # the broker's figures; the database only holds records
QUEUES = "/admin/taskqueue/queue/"


def _queue() -> str:
    return f"ops-{uuid.uuid4().hex[:8]}"


@pytest.mark.reads_by_key
def test_queues_page_counts_lists_revokes_and_purges_waiting_messages(admin_client, transactional_db, broker_url):
    queue = _queue()
    waiting = [add.apply_async((i, i), queue=queue) for i in range(3)]
    add.apply_async((9, 9), queue=queue, countdown=3600)
    [info] = [q for q in operations.queues() if q.name == queue]
    assert (info.ready, info.delayed, info.in_flight) == (3, 1, 0) and 0 <= info.oldest_age < 60
    cells = dict(re.findall(r'<td class="tq-num (\w+)">(.*?)</td>', _row(admin_client.get(QUEUES), "queue", queue)))
    assert (cells["ready"], cells["delayed"], cells["inflight"]) == ("3", "1", "0") and cells["oldest"].endswith(" s")

    page = admin_client.get(QUEUES)
    assert page.status_code == 200 and f'data-queue="{queue}"'.encode() in page.content
    listing = admin_client.get(f"{QUEUES}messages/", {"queue": queue})
    assert listing.status_code == 200 and listing.content.count(b"tests.tasks.add") == 3
    assert listing.content.index(waiting[0].id.encode()) < listing.content.index(waiting[2].id.encode())
    assert len(operations.waiting(queue, offset=1, limit=1)) == 1  # paged

    [key] = [item.key for item in operations.waiting(queue) if item.key.startswith(waiting[0].id)]
    asked = admin_client.post(f"{QUEUES}messages/?queue={queue}", {"key": [key]})
    assert asked.status_code == 200 and b'id="confirm-revoke"' in asked.content  # a confirmation page first
    assert AsyncResult(waiting[0].id).state == states.PENDING  # asking is not revoking
    done = admin_client.post(f"{QUEUES}messages/?queue={queue}", {"key": [key], "confirmed": "yes"}, follow=True)
    assert AsyncResult(waiting[0].id).state == states.REVOKED
    assert _said(done) == [("success", f"1 task(s) revoked (it was waiting: it will not run): {waiting[0].id}")]

    confirm = admin_client.get(f"{QUEUES}purge/", {"queue": queue})
    assert confirm.status_code == 200 and b"cannot be undone" in confirm.content
    assert held(get_broker(), waiting[1].id)  # asking is not purging
    admin_client.post(f"{QUEUES}purge/", {"queue": queue, "confirmed": "yes"})
    assert not held(get_broker(), waiting[1].id) and not held(get_broker(), waiting[2].id)
    [info] = [q for q in operations.queues() if q.name == queue]
    assert (info.ready, info.delayed) == (0, 1)  # the delayed one is kept


@pytest.mark.reads_by_key
def test_waiting_messages_are_paged_fifty_at_a_time(admin_client, transactional_db, broker_url):
    queue = _queue()
    sent = [add.apply_async((i, i), queue=queue) for i in range(51)]
    try:
        first = admin_client.get(f"{QUEUES}messages/", {"queue": queue}).content.decode()
        keys = re.findall(r'<tr data-key="([^"]+)">', first)
        assert len(keys) == 50 and keys[0].startswith(sent[0].id)
        assert re.search(r'href="[^"]*page=2[^"]*">next', first) and "previous</a>" not in first
        second = admin_client.get(f"{QUEUES}messages/", {"queue": queue, "page": "2"}).content.decode()
        [last] = re.findall(r'<tr data-key="([^"]+)">', second)
        assert last.startswith(sent[50].id) and "next &rarr;" not in second
        assert re.search(r'href="[^"]*page=1[^"]*">&larr; previous', second)
    finally:
        assert control.purge(queue) == 51


def _row(response, kind: str, name: str) -> str:
    """The HTML of the one table row of this queue or worker (data-queue / data-worker)."""
    assert response.status_code == 200
    rows = re.findall(rf'<tr data-{kind}="{re.escape(escape(name))}">(.*?)</tr>', response.content.decode(), re.S)
    assert len(rows) == 1, f"{len(rows)} rows for {kind} {name!r}"
    return rows[0]


def _said(response) -> list[tuple[str, str]]:
    return [(message.level_tag, message.message) for message in response.context["messages"]]


@pytest.mark.reads_by_key
def test_revoking_waiting_messages_says_per_task_what_happened(admin_client, transactional_db, broker_url):
    """A message a worker took after the page was read is reported running, not revoked; a waiting
    one is reported revoked and never runs."""
    queue = _queue()
    taken = record.apply_async((f"{queue}-taken", 3.0), queue=queue)
    [key] = [item.key for item in operations.waiting(queue)]  # the page, as it was read
    worker = start_worker("-c", "1", "-Q", queue)
    try:
        wait_until(lambda: Run.objects.filter(label=f"{queue}-taken").exists(), timeout=10, message="task started")
        url = f"{QUEUES}messages/?queue={queue}"
        asked = admin_client.post(url, {"key": [key]})
        assert asked.status_code == 200 and taken.id.encode() in asked.content
        done = admin_client.post(url, {"key": [key], "confirmed": "yes"}, follow=True)
        [(level, text)] = _said(done)
        assert level == "warning" and "a worker already had it" in text and taken.id in text
        wait_until(lambda: Run.objects.filter(label=f"{queue}-taken", finished__isnull=False).exists(), timeout=10,
                   message="the taken task ran to its end, as said")
    finally:
        worker.terminate()

    queue = _queue()
    kept = record.apply_async((f"{queue}-revoked",), queue=queue)
    later = record.apply_async((f"{queue}-later",), queue=queue)
    [key, _] = [item.key for item in operations.waiting(queue)]
    done = admin_client.post(f"{QUEUES}messages/?queue={queue}", {"key": [key], "confirmed": "yes"}, follow=True)
    assert _said(done) == [("success", f"1 task(s) revoked (it was waiting: it will not run): {kept.id}")]
    worker = start_worker("-c", "1", "-Q", queue)
    try:
        assert later.get(timeout=10)  # behind the revoked one in the queue: that one was dropped
        assert AsyncResult(kept.id).state == states.REVOKED
        assert not Run.objects.filter(label=f"{queue}-revoked").exists()
    finally:
        worker.terminate()


def test_queues_page_on_rabbitmq_counts_purges_and_says_what_it_cannot_list(admin_client, transactional_db,
                                                                          broker_url):
    if get_broker().reads_by_key:
        pytest.skip("for a broker that cannot be read by key (RabbitMQ)")
    queue = _queue()
    waiting = [add.apply_async((i, i), queue=queue) for i in range(3)]
    wait_until(lambda: [q for q in operations.queues() if q.name == queue and q.ready == 3], timeout=5,
               message="three ready")  # RabbitMQ's counts follow its confirms within milliseconds
    [info] = [q for q in operations.queues() if q.name == queue]
    assert (info.delayed, info.oldest_age, info.readable) == (None, None, False)  # unknown, not 0
    cells = dict(re.findall(r'<td class="tq-num (\w+)">(.*?)</td>', _row(admin_client.get(QUEUES), "queue", queue)))
    assert cells["ready"] == "3" and cells["inflight"] == "0"
    assert "tq-unknown" in cells["delayed"] and "tq-unknown" in cells["oldest"]  # shown as "–"
    listing = admin_client.get(f"{QUEUES}messages/", {"queue": queue})
    assert listing.status_code == 200 and b"3 message(s) wait here" in listing.content
    assert b"delayed <span class=\"tq-unknown\"" in listing.content
    admin_client.post(f"{QUEUES}purge/", {"queue": queue, "confirmed": "yes"})
    [info] = [q for q in operations.queues() if q.name == queue]
    assert info.ready == 0 and all(AsyncResult(r.id).state == states.PENDING for r in waiting)


def test_a_paused_queue_is_left_alone_until_resumed(admin_client, transactional_db, broker_url):
    queue = _queue()
    worker = start_worker("-c", "1", "-Q", queue)
    try:
        assert add.apply_async((1, 1), queue=queue).get(timeout=10) == 2
        admin_client.post(QUEUES, {"queue": queue, "action": "pause"})
        assert PausedQueue.objects.filter(queue=queue).exists()
        # The bound the docs promise: every consumer has re-read the pauses (every READ_EVERY s, between
        # reserves that wait at most IDLE_WAIT s), with a second to spare.
        time.sleep(READ_EVERY + IDLE_WAIT + 1.0)
        res = add.apply_async((2, 2), queue=queue)
        time.sleep(1.5)  # a consumer that took it would have run it by now
        assert AsyncResult(res.id).state == states.PENDING and waits_in(get_broker(), queue, res.id)
        assert "tq-paused" in _row(admin_client.get(QUEUES), "queue", queue)
        admin_client.post(QUEUES, {"queue": queue, "action": "resume"})
        assert "tq-paused" not in _row(admin_client.get(QUEUES), "queue", queue)
        assert res.get(timeout=READ_EVERY + 10) == 4
    finally:
        worker.terminate()


def test_workers_page_shows_a_live_worker_and_shuts_it_down_warm(admin_client, transactional_db, broker_url):
    queue = _queue()
    worker = start_worker("-c", "2", "-Q", queue, "--hostname", f"{queue}@tests")
    try:
        running = record.apply_async((f"{queue}-long", 2.0), queue=queue)
        assert add.apply_async((3, 4), queue=queue).get(timeout=10) == 7
        wait_until(lambda: Run.objects.filter(label=f"{queue}-long").exists(), timeout=10, message="task started")
        [info] = [w for w in operations.workers() if w.hostname == f"{queue}@tests"]
        assert info.alive and info.record.pid == worker.pid and info.record.queues == [queue]
        assert "tq-live" in _row(admin_client.get("/admin/taskqueue/workerrecord/"), "worker", info.key)
        assert info.record.concurrency == 2 and info.record.pool == "prefork" and info.processed >= 1
        assert [m.id for m in info.running] == [running.id]
        page = admin_client.get("/admin/taskqueue/workerrecord/")
        assert page.status_code == 200 and f"{queue}@tests".encode() in page.content
        assert b"tests.tasks.record" in page.content and b"Warm shutdown" in page.content

        admin_client.post("/admin/taskqueue/workerrecord/", {"worker": info.key, "action": "shutdown"})
        assert WorkerRecord.objects.get(key=info.key).shutdown_requested_at is not None
        wait_until(lambda: worker.process.poll() is not None, timeout=READ_EVERY + 15, message="worker exited")
        assert worker.process.returncode == 0 and "Warm shutdown" in worker.output
        assert running.get(timeout=5)  # the running task was finished, not killed
        [info] = [w for w in operations.workers() if w.key == info.key]
        assert not info.alive
        assert "tq-dead" in _row(admin_client.get("/admin/taskqueue/workerrecord/"), "worker", info.key)
    finally:
        worker.terminate()


def test_status_command_shows_queues_workers_and_dead_letters_as_json(transactional_db, broker_url):
    from tests.factories import DeadLetterFactory

    queue = _queue()
    DeadLetterFactory(message_id="typo-1", reason="task 'tests.tasks.ad' is not registered")
    worker = start_worker("-c", "1", "-Q", queue, "--hostname", f"{queue}@tests")
    try:
        add.apply_async((1, 2), queue=queue).get(timeout=10)
        add.apply_async((1, 2), queue=f"{queue}-idle")
        out = StringIO()
        call_command("taskqueue", "status", "--json", stdout=out)
        report = json.loads(out.getvalue())
        assert report["queues"][f"{queue}-idle"]["ready"] == 1
        [mine] = [w for w in report["workers"] if w["hostname"] == f"{queue}@tests"]
        assert mine["alive"] and mine["pid"] == worker.pid and mine["queues"] == [queue]
        assert report["dead_letters"]["count"] == 1 and report["dead_letters"]["latest"][0]["message_id"] == "typo-1"
        assert report["results"][states.SUCCESS] >= 1
        out = StringIO()
        call_command("taskqueue", "status", stdout=out)
        assert f"{queue}@tests" in out.getvalue() and "dead letters: 1" in out.getvalue()
    finally:
        worker.terminate()


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_warm_shutdown_from_the_admin_reaches_a_worker_of_any_pool(transactional_db, broker_url, pool):
    queue = _queue()
    worker = start_worker("-c", "2", "--pool", pool, "-Q", queue, "--hostname", f"{queue}@tests")
    try:
        assert add.apply_async((1, 1), queue=queue).get(timeout=10) == 2
        [info] = [w for w in operations.workers() if w.hostname == f"{queue}@tests"]
        assert info.alive and info.record.pool == pool
        assert operations.request_shutdown(info.key)
        assert not operations.request_shutdown(info.key)  # asked once
        wait_until(lambda: worker.process.poll() is not None, timeout=READ_EVERY + 15, message="worker exited")
        assert worker.process.returncode == 0 and worker.output.count("Warm shutdown asked from the admin") == 1
    finally:
        worker.terminate()


def test_small_tasks_do_not_wait_behind_a_long_one(transactional_db, broker_url):
    queue = _queue()
    worker = start_worker("-c", "2", "-Q", queue)
    try:
        # behind a burst: a broker that pushes (RabbitMQ) sends consumers in a flow messages ahead
        burst = [add.apply_async((i, i), queue=queue) for i in range(300)]
        long = record.apply_async(("long", 4.0), queue=queue)
        assert [r.get(timeout=30) for r in burst] == [2 * i for i in range(300)]
        wait_until(lambda: Run.objects.filter(label="long").exists(), timeout=10, message="the long task started")
        small = []
        for i in range(20):  # one at a time, as requests come: each may go to either consumer
            small.append(add.apply_async((i, 1), queue=queue))
            small[-1].get(timeout=10)
        assert AsyncResult(long.id).state not in states.READY_STATES  # all twenty ran beside it
        assert long.get(timeout=15)
    finally:
        worker.terminate()
