"""Every operator action needs the change permission: view-only staff see the queues, workers and
dead letters, get no button, and a forged POST changes nothing."""

import uuid

import pytest

from taskqueue import AsyncResult, operations, states
from taskqueue.brokers import get_broker
from taskqueue.models import DeadLetter, PausedQueue, TaskResult, WorkerRecord
from tests.factories import DeadLetterFactory, TaskResultFactory
from tests.helpers import held
from tests.tasks import add

pytestmark = [pytest.mark.any_database]  # permissions, whatever the database

QUEUES = "/admin/taskqueue/queue/"
WORKERS = "/admin/taskqueue/workerrecord/"


@pytest.fixture
def viewer(transactional_db, view_only_client):
    return view_only_client


@pytest.mark.reads_by_key
def test_view_only_staff_cannot_pause_resume_revoke_or_purge_a_queue(viewer, broker_url):
    queue = f"perm-{uuid.uuid4().hex[:8]}"
    res = add.apply_async((1, 1), queue=queue)
    page = viewer.get(QUEUES)
    assert page.status_code == 200 and f'data-queue="{queue}"'.encode() in page.content
    assert b'value="pause"' not in page.content and b"Purge" not in page.content
    listing = viewer.get(f"{QUEUES}messages/", {"queue": queue})
    assert listing.status_code == 200 and res.id.encode() in listing.content
    assert b'name="key"' not in listing.content and b"Revoke selected" not in listing.content

    assert viewer.post(QUEUES, {"queue": queue, "action": "pause"}).status_code == 403
    assert not PausedQueue.objects.filter(queue=queue).exists()
    operations.pause(queue)
    assert viewer.post(QUEUES, {"queue": queue, "action": "resume"}).status_code == 403
    assert PausedQueue.objects.filter(queue=queue).exists()
    assert viewer.post(f"{QUEUES}messages/?queue={queue}", {"key": [res.id]}).status_code == 403
    assert AsyncResult(res.id).state == states.PENDING
    assert viewer.get(f"{QUEUES}purge/", {"queue": queue}).status_code == 403
    assert viewer.post(f"{QUEUES}purge/", {"queue": queue, "confirmed": "yes"}).status_code == 403
    assert held(get_broker(), res.id)


def test_view_only_staff_cannot_shut_a_worker_down(viewer, broker_url):
    WorkerRecord.objects.create(key="w@tests.abcd", hostname="w@tests", pid=1, queues=["default"])
    assert viewer.get(WORKERS).status_code == 200
    assert viewer.post(WORKERS, {"worker": "w@tests.abcd", "action": "shutdown"}).status_code == 403
    assert WorkerRecord.objects.get(key="w@tests.abcd").shutdown_requested_at is None


def test_view_only_staff_cannot_requeue_dead_letters_or_revoke_and_terminate(viewer, broker_url):
    letter = DeadLetterFactory(message_id="dl-1")
    page = viewer.get("/admin/taskqueue/deadletter/")
    assert page.status_code == 200 and b'value="requeue_selected"' not in page.content
    viewer.post("/admin/taskqueue/deadletter/", {"action": "requeue_selected", "_selected_action": [letter.pk]})
    assert DeadLetter.objects.filter(pk=letter.pk).exists()

    running = TaskResultFactory(task_id="perm-running", state=states.STARTED)
    page = viewer.get("/admin/taskqueue/taskresult/")
    assert b'value="revoke_and_terminate"' not in page.content
    viewer.post("/admin/taskqueue/taskresult/", {"action": "revoke_and_terminate", "_selected_action": [running.pk]})
    assert TaskResult.objects.get(pk=running.pk).state == states.STARTED


@pytest.mark.reads_by_key
def test_staff_with_change_permission_get_the_buttons(admin_client, transactional_db, broker_url):
    queue = f"perm-{uuid.uuid4().hex[:8]}"
    add.apply_async((1, 1), queue=queue)
    WorkerRecord.objects.create(key="w@tests.abcd", hostname="w@tests", pid=1, queues=["default"])
    DeadLetterFactory(message_id="dl-1")
    TaskResultFactory(task_id="perm-running", state=states.STARTED)  # the action bar shows over rows only
    assert b'value="pause"' in admin_client.get(QUEUES).content
    assert b"Revoke selected" in admin_client.get(f"{QUEUES}messages/", {"queue": queue}).content
    assert b'value="requeue_selected"' in admin_client.get("/admin/taskqueue/deadletter/").content
    assert b'value="revoke_and_terminate"' in admin_client.get("/admin/taskqueue/taskresult/").content
    assert b"Workers" in admin_client.get("/admin/").content and b"Queues" in admin_client.get("/admin/").content
