"""The demo site's access rules: log in first, see only your own logins and orders, CSRF on POST."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from demo_project.demo.management.commands.rundemo import Command as RunDemo
from demo_project.logins.models import Login, RiskApiControl
from demo_project.payments.models import Order

# Views and rows only: the run's broker and database change nothing here.
pytestmark = [pytest.mark.any_broker, pytest.mark.any_database]


@pytest.fixture
def users(db):
    make = get_user_model().objects.create_user
    return make("ann", password="ann-pw"), make("ben", password="ben-pw")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", ["/", "/logins/", "/payments/"])
def test_an_anonymous_visitor_is_sent_to_the_login_page(db, client, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={path}"
    assert "demo</code> / <code>demo" in client.get(response["Location"]).content.decode()


def test_the_json_endpoints_answer_401_to_an_anonymous_caller(users, client):
    order = Order.objects.create(owner=users[0], customer="ana", amount=1, scoring_seconds=0)
    for response in (client.get(f"/api/orders/{order.pk}/score"),
                     client.post("/api/orders/", {"customer": "ana"}, content_type="application/json")):
        assert response.status_code == 401 and response.json()["error"].startswith("not logged in")
    assert Order.objects.count() == 1


def test_logging_in_through_the_form_leads_back_to_the_page(users, client):
    wrong = client.post("/accounts/login/", {"username": "ann", "password": "nope"})
    assert wrong.status_code == 200 and "Please enter a correct username and password" in wrong.content.decode()
    response = client.post("/accounts/login/", {"username": "ann", "password": "ann-pw", "next": "/payments/"})
    assert response.status_code == 302 and response["Location"] == "/payments/"
    assert client.get("/payments/").status_code == 200
    assert client.post("/accounts/logout/")["Location"] == "/accounts/login/"
    assert client.get("/payments/").status_code == 302


def test_another_users_order_and_login_are_not_found(users):
    ann, ben = users
    order = Order.objects.create(owner=ann, customer="ana", amount=1, scoring_seconds=0, score_task_id="x")
    login = Login.objects.create(owner=ann, user="ann", device="laptop")
    as_ben = _client(ben)
    assert as_ben.get(f"/api/orders/{order.pk}/score").status_code == 404
    assert as_ben.get(f"/logins/{login.pk}/state").status_code == 404
    ben_pages = as_ben.get("/payments/").content.decode() + as_ben.get("/logins/").content.decode()
    assert f'data-order="{order.pk}"' not in ben_pages and f'data-login="{login.pk}"' not in ben_pages
    as_ann = _client(ann)
    assert as_ann.get(f"/api/orders/{order.pk}/score").json()["state"] == "PENDING"
    assert as_ann.get(f"/logins/{login.pk}/state").json()["final"] is False
    assert f'data-order="{order.pk}"' in as_ann.get("/payments/").content.decode()


def test_every_post_needs_the_csrf_token(users, broker_url):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(users[0])
    RiskApiControl.current()
    for path, body in (("/logins/", {"device": "tablet"}), ("/risk-api/control", {"fail_next": "1"})):
        assert browser.post(path, body).status_code == 403
    assert browser.post("/api/orders/", {"customer": "ana"}, content_type="application/json").status_code == 403
    assert not Order.objects.exists() and not Login.objects.exists() and RiskApiControl.current().fail_next == 0
    browser.get("/payments/")  # the page sets the CSRF cookie its script sends back
    token = browser.cookies["csrftoken"].value
    accepted = browser.post("/api/orders/", {"customer": "ana", "seconds": 0}, content_type="application/json",
                            headers={"X-CSRFToken": token})
    assert accepted.status_code == 202 and Order.objects.get().owner == users[0]
    assert browser.post("/risk-api/control", {"fail_next": "2", "csrfmiddlewaretoken": token}).status_code == 302
    assert RiskApiControl.current().fail_next == 2


def test_a_bad_form_is_refused_with_its_reason_in_the_page(users):
    client = _client(users[0])
    response = client.post("/logins/", {"device": ""})
    assert response.status_code == 400 and "device: This field is required." in response.content.decode()
    response = client.post("/risk-api/control", {"fail_next": "many"})
    assert response.status_code == 400 and "fail_next: Enter a whole number." in response.content.decode()
    assert not Login.objects.exists()


def test_rundemo_runs_its_worker_at_info_so_its_console_shows_each_outcome(settings, tmp_path):
    settings.BASE_DIR = tmp_path  # the demo project's setting
    worker, _site = RunDemo()._commands(8000, 2, check=False)
    assert worker[worker.index("--loglevel") + 1] == "info"


def test_a_refused_csrf_check_on_the_api_says_why_in_json(users, settings):
    settings.CSRF_FAILURE_VIEW = "demo_project.demo.access.csrf_failure"  # as the demo's settings
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(users[0])
    response = browser.post("/api/orders/", {"customer": "ana"}, content_type="application/json")
    assert response.status_code == 403 and response.json()["error"] == "CSRF check failed: CSRF cookie not set."
    assert browser.post("/logins/", {"device": "x"})["Content-Type"].startswith("text/html")
