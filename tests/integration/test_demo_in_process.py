"""The demo's views, tested as a project would test its own with taskqueue.testing (docs/testing.md):
a request sends tasks, `assert_enqueued` finds them waiting in their queue, `run_queued` runs them in
the test's process, and the pages then show the outcome. No worker process, no sleeps."""

import pytest
from django.contrib.auth import get_user_model

from demo_project.logins.models import Login, RiskApiControl
from demo_project.payments.models import Order
from taskqueue import control
from taskqueue.testing import assert_enqueued, queued, run_queued
from tests.helpers import wait_until

# The demo's rows are ordinary models; the run's broker is what these tests go through.
pytestmark = pytest.mark.any_database

LOGINS = "demo-logins"  # where tests/settings.py routes the login workflow
SCORING = "scoring"  # score_order's own queue


@pytest.fixture
def client(client, transactional_db, broker_url):
    """Django's test client logged in as ann, with the demo's queues empty (the messages of a
    test transaction are published when it commits: hence transactional_db)."""
    for queue in (LOGINS, SCORING):
        control.purge(queue)
    client.force_login(get_user_model().objects.create_user("ann", password="ann-pw"))
    return client


@pytest.fixture
def risk_api(live_server, settings):
    """The demo's stand-in for the outside risk service, served by the live test server."""
    settings.DEMO_RISK_API_URL = f"{live_server.url}/risk-api/score"
    return RiskApiControl.current()


def _steps(client, login: Login) -> dict[str, str]:
    return {step["name"]: step["state"] for step in client.get(f"/logins/{login.pk}/state").json()["steps"]}


def test_a_login_sends_its_workflow_and_running_it_stores_a_verdict(client, risk_api):
    assert client.post("/logins/", {"device": "tablet"}).status_code == 302
    login = Login.objects.get(device="tablet")
    message = assert_enqueued("demo_project.logins.tasks.check_device", args=[login.pk], queue=LOGINS)
    assert message.id == login.steps[0][1] and len(queued(LOGINS)) == 1  # only the first step waits
    assert set(_steps(client, login).values()) == {"PENDING"}

    assert run_queued([LOGINS]) == 5  # check_device, then each step sends the next
    state = client.get(f"/logins/{login.pk}/state").json()
    assert [step["state"] for step in state["steps"]] == ["SUCCESS"] * 5
    assert state["new_device"] is True and state["notified"] is True and state["final"] is True
    assert state["verdict"] in ("low", "high") and state["errors"] == []
    assert RiskApiControl.current().calls == 1


def test_a_failed_risk_api_call_waits_for_its_retry_then_the_workflow_ends(client, risk_api):
    RiskApiControl.objects.filter(pk=1).update(fail_next=1)
    client.post("/logins/", {"device": "phone"})
    login = Login.objects.get(device="phone")
    assert run_queued([LOGINS]) == 4  # up to the failed call, whose retry waits a second (retry_backoff)
    assert _steps(client, login) == {"check_device": "SUCCESS", "notify_user": "SUCCESS",
                                     "save_login_event": "SUCCESS", "post_to_risk_api": "RETRY",
                                     "post_process": "PENDING"}
    assert queued(LOGINS) == []  # the retry has an eta: not ready, so run_queued left it
    ran = wait_until(lambda: run_queued([LOGINS]), timeout=10, interval=0.1, message="the retry due")
    assert ran == 2  # the retry, then post_process
    assert set(_steps(client, login).values()) == {"SUCCESS"}
    assert RiskApiControl.current().calls == 2


def test_an_order_is_accepted_at_once_and_scored_when_its_queue_runs(client):
    response = client.post("/api/orders/", {"customer": "ana", "amount": "12.50", "seconds": 0},
                           content_type="application/json")
    assert response.status_code == 202
    order = Order.objects.get()
    message = assert_enqueued("demo_project.payments.tasks.score_order", args=[order.pk],
                              kwargs={"customer": "ana"}, queue=SCORING)
    assert message.id == order.score_task_id
    polled = client.get(response["Location"]).json()
    assert (polled["state"], polled["progress"], polled["final"]) == ("PENDING", 0, False)

    assert run_queued([SCORING]) == 1
    polled = client.get(response["Location"]).json()
    assert (polled["state"], polled["progress"], polled["final"]) == ("SUCCESS", 100, True)
    assert polled["result"] == {"order": order.pk, "customer": "ana", "score": float(Order.objects.get().score)}


def test_a_refused_order_sends_nothing(client):
    response = client.post("/api/orders/", {"customer": "ana", "seconds": 600}, content_type="application/json")
    assert response.status_code == 400
    assert queued(SCORING) == [] and not Order.objects.exists()
