"""The demo's two stories against real workers, its risk API served by the live test server."""

from itertools import combinations

import pytest

from demo_project.logins.models import Login, RiskApiControl, WorkflowError
from demo_project.payments.models import Order
from taskqueue import AsyncResult
from taskqueue.testing import start_worker
from tests.helpers import wait_until

# The demo's stories keep their rows in ordinary models and go through the broker: they run with both
# brokers on PostgreSQL. On SQLite, .ci/run's `rundemo --check` runs both stories (SQLite + database
# broker) and tests/e2e/test_lock_key.py runs lock_key on every combination.
pytestmark = pytest.mark.any_database


@pytest.fixture
def demo_worker(live_server, transactional_db, broker_url):
    worker = start_worker("-c", "4", "-Q", "demo-logins,scoring",
                          env={"DEMO_RISK_API_URL": f"{live_server.url}/risk-api/score"})
    yield worker
    worker.terminate()


@pytest.fixture
def alice(transactional_db):
    """A staff account of the demo site (its pages link each step to the admin)."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("alice", password="alice-pw", is_staff=True)


@pytest.fixture
def client(client, alice):
    """Django's test client, logged in as alice."""
    client.force_login(alice)
    return client


def _log_in(client, device: str) -> Login:
    response = client.post("/logins/", {"device": device})
    assert response.status_code == 302
    return Login.objects.filter(device=device).get()


def test_login_workflow_retries_the_risk_api_then_succeeds(demo_worker, client):
    RiskApiControl.objects.create(pk=1, fail_next=2)
    login = _log_in(client, "tablet")
    final = AsyncResult(login.steps[-1][1])
    assert final.get(timeout=30).split()[0] in ("low", "high")
    state = client.get(f"/logins/{login.pk}/state").json()
    assert [step["state"] for step in state["steps"]] == ["SUCCESS"] * 5
    assert state["steps"][3]["retries"] == 2 and state["new_device"] is True and state["errors"] == []
    assert state["final"] is True
    assert RiskApiControl.current().calls == 3
    assert all(step["admin_url"].startswith("/admin/taskqueue/taskresult/") for step in state["steps"])


def test_login_workflow_failing_for_good(demo_worker, client):
    RiskApiControl.objects.create(pk=1, fail_always=True)
    login = _log_in(client, "phone")
    with pytest.raises(Exception, match="risk API failed"):
        AsyncResult(login.steps[-1][1]).get(timeout=30)
    wait_until(lambda: WorkflowError.objects.filter(login=login).exists(), timeout=10, message="error callback")
    state = client.get(f"/logins/{login.pk}/state").json()
    assert [step["state"] for step in state["steps"]] == ["SUCCESS", "SUCCESS", "SUCCESS", "FAILURE", "FAILURE"]
    assert [error["level"] for error in state["errors"]] == ["chain"]  # only the chain's part failed
    assert state["final"] is True  # failed, and its error callback recorded: the page stops polling
    assert RiskApiControl.current().calls == 4  # the first call and three retries


def test_orders_are_accepted_at_once_and_scored_one_at_a_time_per_customer(demo_worker, client):
    locations = []
    for index in range(20):
        response = client.post("/api/orders/", {"customer": ("ana", "bob", "chen")[index % 3], "seconds": 0.5},
                               content_type="application/json")
        assert response.status_code == 202
        locations.append(response["Location"])
    for location in locations:
        wait_until(lambda location=location: client.get(location).json()["state"] == "SUCCESS", timeout=60,
                   interval=0.1, message=f"{location} scored")
    spans = {customer: sorted(Order.objects.filter(customer=customer).values_list("scoring_started",
                                                                                  "scoring_finished"))
             for customer in ("ana", "bob", "chen")}
    for customer, own in spans.items():
        for (_, end), (start, _) in zip(own, own[1:]):
            assert start >= end, f"two scorings for {customer} overlapped"
    # while different customers' orders are scored side by side, not one after the other
    assert any(start < other_end and other_start < end
               for (customer, own), (other, theirs) in combinations(spans.items(), 2)
               for start, end in own for other_start, other_end in theirs), spans
    polled = client.get(locations[0]).json()
    assert polled["progress"] == 100 and polled["result"]["score"] > 0 and polled["final"] is True


def test_score_polling_reports_progress(demo_worker, client):
    response = client.post("/api/orders/", {"customer": "dana", "seconds": 2}, content_type="application/json")
    location = response["Location"]
    seen = wait_until(lambda: client.get(location).json()["state"] == "PROGRESS" and client.get(location).json(),
                      timeout=10, message="PROGRESS")
    assert 0 < seen["progress"] < 100
    wait_until(lambda: client.get(location).json()["progress"] == 100, timeout=20, message="done")


@pytest.mark.any_broker
def test_bad_orders_are_refused_with_their_reason(transactional_db, client):
    def refused(body, content_type="application/json") -> str:
        response = client.post("/api/orders/", body, content_type=content_type)
        assert response.status_code == 400, response.content
        return response.json()["error"]

    assert refused({"amount": "1"}) == "customer: This field is required."
    assert refused({"customer": "x", "seconds": 600}).startswith("seconds: Ensure this value is less than")
    assert refused({"customer": "x", "amount": "ten"}) == "amount: Enter a number."
    assert refused('{"customer": "x",').startswith("invalid JSON: ")
    assert refused(b"\xff\xfe").startswith("invalid JSON: ")
    assert refused('["ana"]').startswith("expected a JSON object")
    assert not Order.objects.exists()


@pytest.mark.any_broker  # the demo's own defaults: its own SQLite file and the database broker
@pytest.mark.any_database
def test_rundemo_serves_and_stops_everything_on_ctrl_c(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    import psutil

    from tests.helpers import free_port

    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE") and not key.startswith("TASKQUEUE_")}
    env.update(DEMO_DATABASE_PATH=str(tmp_path / "demo.sqlite3"), PYTHONUNBUFFERED="1")
    port = free_port()
    demo = subprocess.Popen([sys.executable, "manage.py", "rundemo", "--port", str(port), "-c", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line or len(lines) > 200:
                break
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}/payments/" in text and "demo / demo" in text, text
        family = [demo.pid] + [child.pid for child in psutil.Process(demo.pid).children(recursive=True)]
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert demo.wait(40) == 0
        wait_until(lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                                   for pid in family), timeout=10, message="every demo process gone")
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(10)


@pytest.mark.any_broker  # the demo's own defaults: its own SQLite file and the database broker
@pytest.mark.any_database
def test_rundemo_on_a_busy_port_fails_before_its_banner(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE") and not key.startswith("TASKQUEUE_")}
    env["DEMO_DATABASE_PATH"] = str(tmp_path / "demo.sqlite3")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = subprocess.run([sys.executable, "manage.py", "rundemo", "--port", str(port)], env=env,
                              capture_output=True, text=True, timeout=120)
    assert demo.returncode != 0
    assert f"port {port} is already in use" in demo.stderr and "Demo running" not in demo.stdout
