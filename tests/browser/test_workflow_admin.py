"""The admin's workflow page in headless Chromium: the failed step of a new-device-login chain,
its workflow graph, resumed from the failed node until the chain completes."""

import time
import uuid

import pytest
from django.contrib.auth.models import User

from demo_project.logins.models import Login, RiskApiControl, RiskVerdict
from demo_project.logins.tasks import start_workflow
from taskqueue import chain, chord, control, states
from taskqueue.models import TaskResult
from taskqueue.testing import start_worker
from tests.browser.test_pages import ARTIFACTS, browser, log_in_to_admin  # noqa: F401  (the Chromium fixture)
from tests.helpers import wait_until
from tests.tasks import add, add_when_released, tsum

pytestmark = [pytest.mark.any_broker, pytest.mark.any_database]


@pytest.fixture
def admin_site(live_server, transactional_db, broker_url):
    worker = start_worker("-c", "2", "-Q", "demo-logins",
                          env={"DEMO_RISK_API_URL": f"{live_server.url}/risk-api/score"})
    ARTIFACTS.mkdir(exist_ok=True)
    yield live_server.url
    worker.terminate()


def test_resume_a_failed_login_chain_from_its_workflow_page(browser, admin_site):  # noqa: F811
    RiskApiControl.objects.create(pk=1, fail_always=True)  # the risk API is down: its step fails
    login = Login.objects.create(user="alice", device="stolen-laptop")
    start_workflow(login)
    login.refresh_from_db()
    steps = dict(login.steps)
    risk_id, last_id = steps["post_to_risk_api"], steps["post_process"]
    failed = wait_until(lambda: TaskResult.objects.filter(task_id=risk_id, state=states.FAILURE).first(),
                        timeout=40, message="the risk step failed after its retries")
    User.objects.create_superuser("admin", "admin@example.com", "admin-pw")

    page = log_in_to_admin(browser, admin_site, "admin", "admin-pw", f"/admin/taskqueue/taskresult/{failed.pk}/change/",
                           viewport={"width": 1400, "height": 900})
    page.wait_for_selector("text=View workflow", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "workflow-failed-task.png"), full_page=True)

    page.click("text=View workflow")
    failed_node = page.locator(f'[data-task-id="{risk_id}"]')
    failed_node.wait_for(timeout=10_000)
    assert failed_node.get_attribute("data-state") == states.FAILURE
    assert page.locator(f'[data-task-id="{last_id}"]').get_attribute("data-state") == states.FAILURE  # never ran
    assert "never ran" in page.locator(f'[data-task-id="{last_id}"]').inner_text()
    page.screenshot(path=str(ARTIFACTS / "workflow-failed.png"), full_page=True)

    RiskApiControl.objects.filter(pk=1).update(fail_always=False)  # the API is back
    failed_node.locator("button", has_text="Resume from here").click()
    page.wait_for_selector("text=what followed it runs when it succeeds", timeout=10_000)
    page.wait_for_selector(f'[data-task-id="{last_id}"][data-state="SUCCESS"]', timeout=30_000)
    page.wait_for_selector('#tq-graph[data-running="0"]', timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "workflow-resumed.png"), full_page=True)
    assert page.locator('[data-state="SUCCESS"]').count() == 5  # every step of the chain
    assert RiskVerdict.objects.filter(login=login).exists()

    # more than 20 members: one summary node (sent where nothing consumes, then purged)
    fan_out = chord([add.s(i, i) for i in range(30)], tsum.s()).apply_async(queue="wf-browser-nobody")
    member = TaskResult.objects.filter(group_id=fan_out.parent.id).first()
    page.goto(f"{admin_site}/admin/taskqueue/taskresult/{member.pk}/workflow/")
    page.wait_for_selector("text=30 members:", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "workflow-fan-out.png"), full_page=True)
    page.close()
    assert control.purge("wf-browser-nobody") == 30


def test_the_workflow_page_refreshes_while_it_runs_and_stops_polling_when_done(browser, live_server,  # noqa: F811
                                                                               transactional_db, broker_url, tmp_path):
    """Opened while the chain's second step runs (held until the page is up): the page fetches
    ?fragment=1 until that node is SUCCESS, without navigating, and asks no more once the graph
    says nothing runs."""
    queue = f"wf-live-{uuid.uuid4().hex[:8]}"
    worker = start_worker("-c", "1", "-Q", queue)
    gate = tmp_path / "release-the-second-step"
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        result = chain(add.s(1, 1).set(queue=queue),
                       add_when_released.s(2, gate=str(gate)).set(queue=queue)).apply_async()
        row = wait_until(lambda: TaskResult.objects.filter(task_id=result.parent.id, state=states.SUCCESS).first(),
                         timeout=15, message="the first step done: the second runs until released")
        User.objects.create_superuser("admin", "admin@example.com", "admin-pw")
        page = log_in_to_admin(browser, live_server.url, "admin", "admin-pw",
                               f"/admin/taskqueue/taskresult/{row.pk}/workflow/",
                               viewport={"width": 1200, "height": 700})
        page.wait_for_selector("#tq-graph", timeout=10_000)
        workflow_url = page.url
        assert page.locator("#tq-graph").get_attribute("data-running") == "1"
        assert page.locator(f'[data-task-id="{result.id}"]').get_attribute("data-state") != states.SUCCESS
        fragments: list[float] = []
        navigations: list[str] = []
        page.on("request", lambda request: fragments.append(time.monotonic())
                if "fragment=1" in request.url else None)
        page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
        # a refresh while the step still runs, then the step released
        page.wait_for_event("request", lambda request: "fragment=1" in request.url, timeout=10_000)
        gate.touch()

        page.wait_for_selector(f'[data-task-id="{result.id}"][data-state="SUCCESS"]', timeout=15_000)
        page.wait_for_selector('#tq-graph[data-running="0"]', timeout=5_000)
        page.screenshot(path=str(ARTIFACTS / "workflow-refreshed.png"), full_page=True)
        assert fragments, "the page was refreshed by fetching ?fragment=1"
        assert navigations == [] and page.url == workflow_url  # refreshed in place
        asked = len(fragments)
        page.wait_for_timeout(5_000)  # more than two polling periods (2 s)
        assert len(fragments) == asked, "polling stopped once nothing runs"
        page.close()
    finally:
        gate.touch()  # the step ends, whatever happened above
        worker.terminate()
