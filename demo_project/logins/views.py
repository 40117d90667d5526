"""Views of the login story: trigger a workflow, watch its steps, and the risk API it calls."""

import json
import random
import time

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from taskqueue.models import TaskResult

from .models import Login, RiskApiControl
from .tasks import start_workflow


def logins_page(request: HttpRequest) -> HttpResponse:
    user = request.GET.get("user") or request.POST.get("user") or "alice"
    if request.method == "POST":
        with transaction.atomic():  # the workflow is sent when the login is committed
            login = Login.objects.create(user=user, device=request.POST.get("device") or "laptop")
            start_workflow(login)
        return redirect(f"{reverse('logins')}?user={user}")
    logins = Login.objects.filter(user=user)[:20]
    return render(request, "logins/index.html", {"user": user, "logins": logins,
                                                 "control": RiskApiControl.current()})


def login_state(request: HttpRequest, login_id: int) -> JsonResponse:
    """Every step of a login's workflow with its state and its admin page."""
    login = get_object_or_404(Login, pk=login_id)
    ids = [task_id for _, task_id in login.steps]
    rows = {row.task_id: row for row in TaskResult.objects.filter(task_id__in=ids)}
    steps = []
    for name, task_id in login.steps:
        row = rows.get(task_id)
        steps.append({"name": name, "task_id": task_id, "state": row.state if row else "PENDING",
                      "retries": row.retries if row else 0,
                      "admin_url": reverse("admin:taskqueue_taskresult_change", args=[row.pk]) if row else None})
    verdict = getattr(login, "verdict", None)
    return JsonResponse({"id": login.pk, "user": login.user, "device": login.device, "steps": steps,
                         "new_device": login.new_device, "notified": login.notified,
                         "verdict": verdict.verdict if verdict else None,
                         "errors": list(login.errors.values("level", "task_id"))})


@csrf_exempt
@require_POST
def risk_api(request: HttpRequest) -> JsonResponse:
    """The "external" risk-scoring service the workflow calls; RiskApiControl makes it misbehave."""
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
    body = json.loads(request.body or b"{}")
    score = random.Random(body.get("login_id")).random() * (0.9 if body.get("new_device") else 0.4)
    return JsonResponse({"verdict": "high" if score > 0.7 else "low", "score": score})


@require_POST
def risk_api_control(request: HttpRequest) -> HttpResponse:
    RiskApiControl.current()
    RiskApiControl.objects.filter(pk=1).update(
        fail_next=int(request.POST.get("fail_next") or 0), fail_always=request.POST.get("fail_always") == "on",
        delay=float(request.POST.get("delay") or 0))
    return redirect(f"{reverse('logins')}?user={request.POST.get('user', 'alice')}")
