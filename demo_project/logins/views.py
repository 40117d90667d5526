"""Views of the login story: trigger a workflow, watch its steps, and the risk API it calls.

Each account sees only its own logins; the risk API stands for an outside service."""

import json
import random
import time

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from taskqueue import states
from taskqueue.models import TaskResult

from ..demo.access import login_required_json
from .forms import LoginForm, RiskApiControlForm
from .models import Login, RiskApiControl
from .tasks import start_workflow


@login_required
@csrf_protect  # also where the test settings run without CsrfViewMiddleware
def logins_page(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST) if request.method == "POST" else LoginForm(initial={"device": "laptop"})
    if request.method == "POST":
        if form.is_valid():
            with transaction.atomic():  # the workflow is sent when the login is committed
                login = Login.objects.create(owner=request.user, user=request.user.get_username(),
                                             device=form.cleaned_data["device"])
                start_workflow(login)
            return redirect("logins")
    return _logins_page(request, form, RiskApiControlForm(initial=_control_values()),
                        status=400 if form.is_bound else 200)


def _logins_page(request: HttpRequest, form: LoginForm, control: RiskApiControlForm, status: int) -> HttpResponse:
    logins = Login.objects.filter(owner=request.user)[:20]
    return render(request, "logins/index.html", {"form": form, "control": control, "logins": logins},
                  status=status)


def _control_values() -> dict:
    control = RiskApiControl.current()
    return {"fail_next": control.fail_next, "fail_always": control.fail_always, "delay": control.delay}


@login_required_json
@require_GET
def login_state(request: HttpRequest, login_id: int) -> JsonResponse:
    """Every step of a login's workflow with its state (and its admin page, for staff); `final`
    once nothing more will change."""
    login = Login.objects.filter(pk=login_id, owner=request.user).first()
    if login is None:
        return JsonResponse({"error": f"no login {login_id} of yours"}, status=404)
    ids = [task_id for _, task_id in login.steps]
    rows = {row.task_id: row for row in TaskResult.objects.filter(task_id__in=ids)}
    steps = []
    for name, task_id in login.steps:
        row = rows.get(task_id)
        admin_url = reverse("admin:taskqueue_taskresult_change", args=[row.pk]) \
            if row and request.user.is_staff else None
        steps.append({"name": name, "task_id": task_id, "state": row.state if row else states.PENDING,
                      "retries": row.retries if row else 0, "admin_url": admin_url})
    verdict = getattr(login, "verdict", None)
    errors = list(login.errors.values("level", "task_id"))
    return JsonResponse({"id": login.pk, "user": login.user, "device": login.device, "steps": steps,
                         "new_device": login.new_device, "notified": login.notified,
                         "verdict": verdict.verdict if verdict else None, "errors": errors,
                         "final": _final(steps, errors)})


def _final(steps: list[dict], errors: list) -> bool:
    """Every step finished, and a failed workflow's error callback has written its row."""
    if not steps or any(step["state"] not in states.READY_STATES for step in steps):
        return False
    return bool(errors) or all(step["state"] == states.SUCCESS for step in steps)


# The "outside" service the worker calls, with no session: CSRF protects a browser's cookies, and
# this endpoint reads none, so a token would protect nothing (a real service would check its caller).
@csrf_exempt
@require_POST
def risk_api(request: HttpRequest) -> JsonResponse:
    """The "external" risk-scoring service the workflow calls; RiskApiControl makes it misbehave."""
    try:
        body = json.loads(request.body or b"{}")
        login_id, new_device = body.get("login_id"), bool(body.get("new_device"))
    except (ValueError, AttributeError) as exc:
        return JsonResponse({"error": f"expected a JSON object: {exc}"}, status=400)
    with transaction.atomic():
        control = RiskApiControl.objects.select_for_update().get_or_create(pk=1)[0]
        RiskApiControl.objects.filter(pk=1).update(calls=F("calls") + 1)
        failing = control.fail_always or control.fail_next > 0
        if control.fail_next > 0:
            RiskApiControl.objects.filter(pk=1).update(fail_next=F("fail_next") - 1)
    if control.delay:
        time.sleep(control.delay)
    if failing:
        return JsonResponse({"error": "risk engine unavailable"}, status=503)
    score = random.Random(login_id).random() * (0.9 if new_device else 0.4)
    return JsonResponse({"verdict": "high" if score > 0.7 else "low", "score": score})


@login_required
@csrf_protect
@require_POST
def risk_api_control(request: HttpRequest) -> HttpResponse:
    form = RiskApiControlForm(request.POST)
    if not form.is_valid():
        return _logins_page(request, LoginForm(initial={"device": "laptop"}), form, status=400)
    RiskApiControl.current()
    RiskApiControl.objects.filter(pk=1).update(
        fail_next=form.cleaned_data["fail_next"] or 0, fail_always=form.cleaned_data["fail_always"],
        delay=form.cleaned_data["delay"] or 0)
    return redirect("logins")
