"""Operating taskqueue from the admin in real headless Chromium, with a live worker: revoke and
terminate a running task, requeue a dead letter, the queues and workers pages, and a view-only user
who gets no action. Screenshots go to artifacts/."""

import uuid

import pytest
from django.contrib.auth.models import Permission, User

from taskqueue import AsyncResult, registry, send_task, states, task
from taskqueue.exceptions import DeadLettered
from taskqueue.models import DeadLetter, TaskResult
from taskqueue.testing import start_worker
from tests.browser.test_pages import ARTIFACTS, browser, log_in_to_admin  # noqa: F401  (the Chromium fixture)
from tests.factories import DeadLetterFactory
from tests.helpers import wait_until
from tests.models import Run
from tests.tasks import add, record

# The admin pages in a browser; what they do is tested on every broker and database by
# tests/e2e/test_admin_actions.py and tests/e2e/test_queues_and_workers.py.
pytestmark = [pytest.mark.any_broker, pytest.mark.any_database]


@pytest.fixture
def site(live_server, transactional_db, broker_url):
    ARTIFACTS.mkdir(exist_ok=True)
    return live_server.url


@pytest.fixture
def queue():
    return f"ui-{uuid.uuid4().hex[:8]}"


def _log_in(browser, site, username: str, password: str = "pw"):  # noqa: F811
    page = log_in_to_admin(browser, site, username, password)
    page.wait_for_selector("#content", timeout=10_000)
    return page


def _admin(browser, site):  # noqa: F811
    User.objects.create_superuser("boss", password="pw")
    return _log_in(browser, site, "boss")


def _run_action(page, url: str, pk: int, action: str) -> str:
    page.goto(url)
    page.check(f"input[name=_selected_action][value='{pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    return page.wait_for_selector(".messagelist", timeout=15_000).inner_text()


def test_revoke_and_terminate_a_running_task(browser, site, queue):  # noqa: F811
    worker = start_worker("-c", "1", "-Q", queue)
    try:
        label = f"{queue}-long"
        running = record.apply_async((label, 30.0), queue=queue)
        wait_until(lambda: Run.objects.filter(label=label).exists(), timeout=10, message="task started")
        page = _admin(browser, site)
        row = TaskResult.objects.get(task_id=running.id)
        said = _run_action(page, f"{site}/admin/taskqueue/taskresult/", row.pk, "revoke_and_terminate")
        page.screenshot(path=str(ARTIFACTS / "admin-revoke-terminate.png"), full_page=True)
        assert f"1 task(s) terminated (it was running and was stopped): {running.id}" in said
        assert page.locator(".messagelist .success").count() == 1
        assert AsyncResult(running.id).state == states.REVOKED and Run.objects.get(label=label).finished is None
        page.close()
    finally:
        worker.terminate()


def test_requeue_a_dead_letter_after_the_fix(browser, site, queue, monkeypatch):  # noqa: F811
    before_fix = start_worker("-c", "1", "-Q", queue)
    try:
        res = send_task("tests.tasks.typo_fixed", args=(5,), queue=queue)
        with pytest.raises(DeadLettered):
            res.get(timeout=10)
    finally:
        before_fix.terminate()
    monkeypatch.setitem(registry._tasks, "tests.tasks.typo_fixed", None)  # undone after the test
    task(name="tests.tasks.typo_fixed")(lambda x: x * 10)  # the fix, deployed here and on the new worker
    after_fix = start_worker("-c", "1", "-Q", queue, env={"TASKQUEUE_TEST_TYPO_FIXED": "1"})
    try:
        page = _admin(browser, site)
        letter = DeadLetter.objects.get(message_id=res.id)
        page.goto(f"{site}/admin/taskqueue/deadletter/")
        page.screenshot(path=str(ARTIFACTS / "admin-dead-letters.png"), full_page=True)
        said = _run_action(page, f"{site}/admin/taskqueue/deadletter/", letter.pk, "requeue_selected")
        assert f"Requeued 1 message(s): {res.id}" in said
        assert AsyncResult(res.id).get(timeout=10) == 50
        page.goto(f"{site}/admin/taskqueue/taskresult/?q={res.id}")
        page.wait_for_selector("text=SUCCESS", timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "admin-requeued-success.png"), full_page=True)
        page.close()
    finally:
        after_fix.terminate()


def test_queues_and_workers_pages_with_a_live_worker(browser, site, queue, settings):  # noqa: F811
    # The page shows a worker live while its lease is younger than the visibility timeout: the
    # suite's 3 s is shorter than a supervisor starved of CPU by the parallel suites may take.
    settings.TASKQUEUE_VISIBILITY_TIMEOUT = 15.0
    worker = start_worker("-c", "2", "-Q", queue, "--hostname", f"{queue}@browser",
                          env={"TASKQUEUE_VISIBILITY_TIMEOUT": "15"})
    try:
        label = f"{queue}-busy"
        busy = record.apply_async((label, 20.0), queue=queue)
        wait_until(lambda: Run.objects.filter(label=label).exists(), timeout=10, message="task started")
        add.apply_async((1, 1), queue=f"{queue}-waiting")
        page = _admin(browser, site)
        page.goto(f"{site}/admin/")
        page.click("text=Queues")
        row = page.locator(f"tr[data-queue='{queue}-waiting']")
        assert row.locator(".ready").inner_text() == "1"
        assert page.locator(f"tr[data-queue='{queue}'] .inflight").inner_text() == "1"
        page.screenshot(path=str(ARTIFACTS / "admin-queues.png"), full_page=True)
        row.locator("a").first.click()
        page.wait_for_selector("#waiting tr[data-key]", timeout=10_000)
        assert "tests.tasks.add" in page.locator("#waiting").inner_text()
        page.screenshot(path=str(ARTIFACTS / "admin-queue-messages.png"), full_page=True)
        page.goto(f"{site}/admin/")
        page.click("text=Workers")
        mine = page.locator(f"tr[data-worker^='{queue}@browser']")
        assert mine.locator(".tq-live").count() == 1, mine.all_inner_texts()
        assert "tests.tasks.record" in mine.locator(".running").inner_text()
        assert mine.locator("button[value=shutdown]").count() == 1
        page.screenshot(path=str(ARTIFACTS / "admin-workers.png"), full_page=True)
        page.close()
        busy.revoke(terminate=True)  # not waited for by the warm shutdown below
    finally:
        worker.terminate()


def test_a_view_only_user_gets_no_action(browser, site, queue):  # noqa: F811
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="taskqueue",
                                                        codename__startswith="view_"))
    worker = start_worker("-c", "1", "-Q", queue)
    try:
        add.apply_async((1, 1), queue=queue).get(timeout=10)
        add.apply_async((2, 2), queue=f"{queue}-waiting")
        DeadLetterFactory(message_id="viewer-sees-it")
        page = _log_in(browser, site, "viewer")
        page.goto(f"{site}/admin/taskqueue/taskresult/")
        assert page.locator("select[name=action] option[value^=revoke]").count() == 0
        page.screenshot(path=str(ARTIFACTS / "admin-view-only-results.png"), full_page=True)
        page.goto(f"{site}/admin/taskqueue/deadletter/")
        assert "viewer-sees-it" in page.content()
        assert page.locator("select[name=action] option[value=requeue_selected]").count() == 0
        page.goto(f"{site}/admin/taskqueue/queue/")
        assert page.locator(f"tr[data-queue='{queue}-waiting']").count() == 1
        assert page.locator("button[value=pause], a:text('Purge')").count() == 0
        page.goto(f"{site}/admin/taskqueue/queue/messages/?queue={queue}-waiting")
        assert page.locator("#waiting tr[data-key]").count() == 1 and page.locator("#revoke-waiting").count() == 0
        page.goto(f"{site}/admin/taskqueue/workerrecord/")
        assert page.locator(".tq-live").count() >= 1 and page.locator("button[value=shutdown]").count() == 0
        page.screenshot(path=str(ARTIFACTS / "admin-view-only-workers.png"), full_page=True)
        page.close()
    finally:
        worker.terminate()
