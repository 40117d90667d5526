"""The scoring API (202 Accepted + a Location to poll) and a page to watch it work. Each account
sees only its own orders; a bad order is refused with 400 and its reason."""

import json

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from taskqueue import AsyncResult, states

from ..demo.access import form_errors, login_required_json
from .forms import OrderForm
from .models import Order
from .tasks import score_order

CUSTOMERS = ("ana", "bob", "chen")


class BadOrder(ValueError):
    """The request's body cannot be read as an order."""


def _order_data(request: HttpRequest):
    if request.content_type != "application/json":
        return request.POST
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise BadOrder(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadOrder("expected a JSON object such as {\"customer\": \"ana\", \"amount\": \"12.50\"}")
    return data


@login_required_json
@csrf_protect  # also where the test settings run without CsrfViewMiddleware
@require_POST
def create_order(request: HttpRequest) -> JsonResponse:
    """Create an order and start scoring it; answers at once with where to poll."""
    try:
        form = OrderForm(_order_data(request))
    except BadOrder as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if not form.is_valid():
        return JsonResponse({"error": form_errors(form)}, status=400)
    customer, amount, seconds = (form.cleaned_data[name] for name in ("customer", "amount", "seconds"))
    with transaction.atomic():  # scoring is sent when the order is committed
        order = Order.objects.create(owner=request.user, customer=customer, amount=amount, scoring_seconds=seconds)
        result = score_order.delay(order.pk, customer=customer)
        Order.objects.filter(pk=order.pk).update(score_task_id=result.id)
    location = f"/api/orders/{order.pk}/score"
    response = JsonResponse({"id": order.pk, "customer": customer, "score_url": location}, status=202)
    response["Location"] = location
    return response


@login_required_json
@require_GET
def order_score(request: HttpRequest, order_id: int) -> JsonResponse:
    """{state, progress, result, final} of an order's scoring; `final` once nothing more will change."""
    order = Order.objects.filter(pk=order_id, owner=request.user).first()
    if order is None:
        return JsonResponse({"error": f"no order {order_id} of yours"}, status=404)
    result = AsyncResult(order.score_task_id)
    state = result.state
    info = result.info
    if state == states.SUCCESS:
        progress, payload = 100, info
    elif state == "PROGRESS":
        progress, payload = info.get("progress", 0), None
    elif state in states.EXCEPTION_STATES:
        progress, payload = 0, {"error": repr(info)}
    else:
        progress, payload = 0, None
    return JsonResponse({"id": order.pk, "customer": order.customer, "state": state, "progress": progress,
                         "result": payload, "final": state in states.READY_STATES})


@login_required
@csrf_protect  # sets the CSRF cookie the page's fetch sends back
def payments_page(request: HttpRequest) -> HttpResponse:
    return render(request, "payments/index.html", {"orders": Order.objects.filter(owner=request.user)[:30],
                                                   "customers": CUSTOMERS})
