"""`rundemo --check`: both stories end to end, headless, with a short report."""

from __future__ import annotations

import time

from django.contrib.auth import get_user_model
from django.test import Client

from taskqueue import AsyncResult

from ..logins.models import Login, RiskApiControl
from ..logins.tasks import start_workflow
from ..payments.models import Order

CUSTOMERS = ("ana", "bob", "chen")


def run_check(out, username: str) -> bool:
    """Both stories as `username` (the demo's account): its logins and orders."""
    user = get_user_model().objects.get(username=username)
    results = [_check_logins(out, user), _check_payments(out, user)]
    out.write("demo check: " + ("PASSED" if all(results) else "FAILED"))
    return all(results)


def _check_logins(out, user) -> bool:
    started = time.monotonic()
    RiskApiControl.objects.update_or_create(pk=1, defaults={"fail_next": 0, "fail_always": False, "delay": 0})
    plain = Login.objects.create(owner=user, user=user.get_username(), device=f"laptop-{time.time():.0f}")
    verdicts = [start_workflow(plain).get(timeout=60)]
    RiskApiControl.objects.filter(pk=1).update(fail_next=2)  # the next workflow's call fails twice
    flaky = Login.objects.create(owner=user, user=user.get_username(), device=f"phone-{time.time():.0f}")
    verdicts.append(start_workflow(flaky).get(timeout=60))
    retries = AsyncResult(flaky.steps[3][1]).retries
    ok = all(verdicts) and retries == 2
    out.write(f"logins: 2 workflows ({len(plain.steps) * 2} tasks) in {time.monotonic() - started:.1f} s; "
              f"verdicts {verdicts}; risk API retried {retries} times after 2 failures: "
              f"{'ok' if ok else 'WRONG'}")
    return ok


def _check_payments(out, user) -> bool:
    client = Client(enforce_csrf_checks=True)  # as a browser: logged in, the page's CSRF token on each POST
    client.force_login(user)
    token = _csrf_token(client)
    started = time.monotonic()
    seconds = 1.0
    orders = []
    for index in range(6):
        response = client.post("/api/orders/", {"customer": CUSTOMERS[index % 3], "amount": "10.00",
                                                "seconds": seconds}, content_type="application/json",
                               headers={"X-CSRFToken": token})
        if response.status_code != 202:
            out.write(f"payments: POST /api/orders/ answered {response.status_code}")
            return False
        orders.append(response["Location"])
    created_in = time.monotonic() - started
    deadline = time.monotonic() + 60
    pending = set(orders)
    while pending and time.monotonic() < deadline:
        pending = {url for url in pending if client.get(url).json()["state"] != "SUCCESS"}
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    serial = _serialised_per_customer()
    ok = not pending and serial and elapsed < 6 * seconds
    out.write(f"payments: 6 orders for 3 customers created in {created_in * 1000:.0f} ms, all scored in "
              f"{elapsed:.1f} s (serially {6 * seconds:.0f} s); one customer's runs never overlapped: "
              f"{'yes' if serial else 'NO'}; {'ok' if ok else 'WRONG'}")
    return ok


def _csrf_token(client: Client) -> str:
    """The token the payments page hands its script (and the cookie it sets)."""
    client.get("/payments/")
    return client.cookies["csrftoken"].value


def _serialised_per_customer() -> bool:
    for customer in CUSTOMERS:
        spans = sorted(Order.objects.filter(customer=customer, scoring_finished__isnull=False)
                       .values_list("scoring_started", "scoring_finished"))
        if any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)):
            return False
    return True
