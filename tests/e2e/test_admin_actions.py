"""The admin's actions that touch running work, against real workers: a dead letter fails its
result and is requeued once the cause is fixed; revoke says what it did to each task."""

import uuid

import pytest
from django.contrib.messages import get_messages

from taskqueue import AsyncResult, chain, chord, registry, send_task, signature, states, task
from taskqueue.exceptions import ChordError, DeadLettered
from taskqueue.models import DeadLetter, TaskResult
from taskqueue.testing import start_worker
from tests.helpers import wait_until
from tests.models import Run
from tests.tasks import add, record, tsum

pytestmark = [pytest.mark.slow, pytest.mark.any_database]  # revoke and requeue go through the broker


def _queue() -> str:
    return f"act-{uuid.uuid4().hex[:8]}"


def _said(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def test_a_dead_letter_fails_its_result_and_runs_once_requeued(admin_client, transactional_db, broker_url,
                                                                monkeypatch):
    queue = _queue()
    before_fix = start_worker("-c", "1", "-Q", queue)
    try:
        res = send_task("tests.tasks.typo_fixed", args=(4,), queue=queue)
        with pytest.raises(DeadLettered, match="no task named 'tests.tasks.typo_fixed'"):
            res.get(timeout=10)  # raises instead of waiting for ever
        assert AsyncResult(res.id).state == states.FAILURE
        letter = DeadLetter.objects.get(message_id=res.id)
    finally:
        before_fix.terminate()

    refused = admin_client.post("/admin/taskqueue/deadletter/", {"action": "requeue_selected",
                                                                 "_selected_action": [letter.pk]}, follow=True)
    expected = f"Dead letter {letter.pk} not requeued: no task named 'tests.tasks.typo_fixed'"
    assert [level for level, text in _said(refused) if text.startswith(expected)] == ["error"]
    assert DeadLetter.objects.filter(pk=letter.pk).exists()  # still unknown here: kept

    monkeypatch.setitem(registry._tasks, "tests.tasks.typo_fixed", None)  # undone after the test
    task(name="tests.tasks.typo_fixed")(lambda x: x * 10)  # the fix, deployed here and on the new worker
    after_fix = start_worker("-c", "1", "-Q", queue, env={"TASKQUEUE_TEST_TYPO_FIXED": "1"})
    try:
        response = admin_client.post("/admin/taskqueue/deadletter/", {"action": "requeue_selected",
                                                                      "_selected_action": [letter.pk]}, follow=True)
        assert ("success", f"Requeued 1 message(s): {res.id}") in _said(response)
        assert not DeadLetter.objects.filter(pk=letter.pk).exists()
        assert AsyncResult(res.id).get(timeout=10) == 40
        assert TaskResult.objects.get(task_id=res.id).state == states.SUCCESS
    finally:
        after_fix.terminate()


def _fix_typo_and_requeue(admin_client, monkeypatch, queue: str, task_id: str) -> None:
    """Deploy the missing task (here and on a new worker), then requeue its dead letter; returns
    the new worker."""
    letter = DeadLetter.objects.get(message_id=task_id)
    monkeypatch.setitem(registry._tasks, "tests.tasks.typo_fixed", None)  # undone after the test
    task(name="tests.tasks.typo_fixed")(lambda x: x * 10)
    worker = start_worker("-c", "1", "-Q", queue, env={"TASKQUEUE_TEST_TYPO_FIXED": "1"})
    response = admin_client.post("/admin/taskqueue/deadletter/", {"action": "requeue_selected",
                                                                  "_selected_action": [letter.pk]}, follow=True)
    assert ("success", f"Requeued 1 message(s): {task_id}") in _said(response)
    return worker


def test_a_dead_lettered_chain_step_fails_the_steps_after_it_and_a_requeue_carries_the_chain_on(
        admin_client, transactional_db, broker_url, monkeypatch):
    queue = _queue()
    before_fix = start_worker("-c", "1", "-Q", queue)
    try:
        res = chain(signature("tests.tasks.typo_fixed", args=(4,), queue=queue), add.s(1).set(queue=queue))()
        with pytest.raises(DeadLettered):  # the step after it will never run: its get() raises
            res.get(timeout=10)
        assert AsyncResult(res.id).state == states.FAILURE
    finally:
        before_fix.terminate()
    after_fix = _fix_typo_and_requeue(admin_client, monkeypatch, queue, res.parent.id)
    try:  # a result seen finished stays so in its AsyncResult, as in Celery: a fresh one waits again
        assert AsyncResult(res.id).get(timeout=10) == 41
    finally:
        after_fix.terminate()


def test_a_requeued_chord_member_reopens_its_chord(admin_client, transactional_db, broker_url, monkeypatch):
    queue = _queue()
    before_fix = start_worker("-c", "1", "-Q", queue)
    try:
        res = chord([signature("tests.tasks.typo_fixed", args=(4,), queue=queue), add.si(1, 1).set(queue=queue)],
                    tsum.s().set(queue=queue))()
        with pytest.raises(ChordError, match="DeadLettered"):
            res.get(timeout=10)
    finally:
        before_fix.terminate()
    after_fix = _fix_typo_and_requeue(admin_client, monkeypatch, queue, res.parent.results[0].id)
    try:
        assert AsyncResult(res.id).get(timeout=10) == 42  # the body, failed for the dead letter, runs now
    finally:
        after_fix.terminate()


def _revoke(admin_client, action: str, *results) -> list[tuple[str, str]]:
    pks = list(TaskResult.objects.filter(task_id__in=[r.id for r in results]).values_list("pk", flat=True))
    response = admin_client.post("/admin/taskqueue/taskresult/", {"action": action, "_selected_action": pks},
                                 follow=True)
    assert response.status_code == 200
    return _said(response)


def test_revoking_a_running_task_without_terminate_does_not_claim_it_stopped(admin_client, transactional_db,
                                                                             broker_url):
    queue = _queue()
    worker = start_worker("-c", "1", "-Q", queue)
    try:
        label = f"{queue}-runs-on"
        running = record.apply_async((label, 1.5), queue=queue)
        wait_until(lambda: Run.objects.filter(label=label).exists(), timeout=10, message="task started")
        done = add.apply_async((1, 1), queue=f"{queue}-other")
        TaskResult.objects.create(task_id=done.id, task_name="tests.tasks.add", state=states.SUCCESS)
        said = _revoke(admin_client, "revoke_selected", running, done)
        assert [level for level, _ in said if "runs to its end" in _] == ["warning"]
        assert not any(level == "success" for level, _ in said)  # nothing was stopped, nothing is claimed
        assert ("info", f"1 task(s) already finished: nothing to do: {done.id}") in said
        wait_until(lambda: Run.objects.get(label=label).finished, timeout=10, message="it ran to its end")
        assert AsyncResult(running.id).state == states.REVOKED
    finally:
        worker.terminate()


def test_revoke_and_terminate_stops_a_running_task_and_says_so(admin_client, transactional_db, broker_url):
    queue = _queue()
    worker = start_worker("-c", "1", "-Q", queue)
    try:
        label = f"{queue}-stopped"
        running = record.apply_async((label, 30.0), queue=queue)
        wait_until(lambda: Run.objects.filter(label=label).exists(), timeout=10, message="task started")
        said = _revoke(admin_client, "revoke_and_terminate", running)
        assert said == [("success", f"1 task(s) terminated (it was running and was stopped): {running.id}")]
        assert Run.objects.get(label=label).finished is None
        assert AsyncResult(running.id).state == states.REVOKED
        assert add.apply_async((2, 3), queue=queue).get(timeout=15) == 5  # the worker goes on
    finally:
        worker.terminate()


def test_revoke_and_terminate_on_a_thread_pool_says_the_task_runs_on(admin_client, transactional_db, broker_url):
    queue = _queue()
    worker = start_worker("-c", "1", "--pool", "threads", "-Q", queue)
    try:
        label = f"{queue}-in-a-thread"
        running = record.apply_async((label, 1.5), queue=queue)
        wait_until(lambda: Run.objects.filter(label=label).exists(), timeout=10, message="task started")
        said = _revoke(admin_client, "revoke_and_terminate", running)
        assert said == [("warning", "1 task(s) marked revoked, but its worker runs tasks in threads, which cannot be "
                                    f"stopped: it runs to its end: {running.id}")]
        wait_until(lambda: Run.objects.get(label=label).finished, timeout=10, message="it ran to its end")
    finally:
        worker.terminate()


def test_a_dead_lettered_chord_member_fails_its_chord_instead_of_leaving_it_waiting(transactional_db, broker_url):
    from taskqueue import chord, signature
    from taskqueue.exceptions import ChordError
    from tests.tasks import tsum

    queue = _queue()
    worker = start_worker("-c", "1", "-Q", queue)
    try:
        res = chord([add.s(1, 1).set(queue=queue), signature("tests.tasks.misspelt", args=(1,), queue=queue)],
                    tsum.s().set(queue=queue))()
        with pytest.raises(ChordError):
            res.get(timeout=15)
        assert DeadLetter.objects.filter(task_name="tests.tasks.misspelt").exists()
    finally:
        worker.terminate()
