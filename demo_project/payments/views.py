"""The scoring API (202 Accepted + a Location to poll) and a page to watch it work."""

import json
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from taskqueue import AsyncResult, states

from .models import Order
from .tasks import score_order


@csrf_exempt
@require_POST
def create_order(request: HttpRequest) -> JsonResponse:
    """Create an order and start scoring it; answers at once with where to poll."""
    data = json.loads(request.body) if request.content_type == "application/json" else request.POST
    try:
        customer = str(data["customer"])
        amount = Decimal(str(data.get("amount", "10.00")))
        seconds = float(data.get("seconds", settings.DEMO_SCORING_SECONDS))
    except (KeyError, InvalidOperation, ValueError) as exc:
        return JsonResponse({"error": f"bad order: {exc}"}, status=400)
    if not 0 <= seconds <= 60:
        return JsonResponse({"error": "seconds must be between 0 and 60"}, status=400)
    with transaction.atomic():  # scoring is sent when the order is committed
        order = Order.objects.create(customer=customer, amount=amount, scoring_seconds=seconds)
        result = score_order.delay(order.pk, customer=customer)
        Order.objects.filter(pk=order.pk).update(score_task_id=result.id)
    location = f"/api/orders/{order.pk}/score"
    response = JsonResponse({"id": order.pk, "customer": customer, "score_url": location}, status=202)
    response["Location"] = location
    return response


@require_GET
def order_score(request: HttpRequest, order_id: int) -> JsonResponse:
    """{state, progress, result} of an order's scoring."""
    order = get_object_or_404(Order, pk=order_id)
    result = AsyncResult(order.score_task_id)
    state = result.state
    info = result.info
    if state == states.SUCCESS:
        progress, payload = 100, info
    elif state == "PROGRESS":
        progress, payload = info.get("progress", 0), None
    elif state == states.FAILURE:
        progress, payload = 0, {"error": repr(info)}
    else:
        progress, payload = 0, None
    return JsonResponse({"id": order.pk, "customer": order.customer, "state": state, "progress": progress,
                         "result": payload})


def payments_page(request: HttpRequest) -> HttpResponse:
    return render(request, "payments/index.html", {"orders": Order.objects.all()[:30],
                                                   "customers": ["ana", "bob", "chen"]})
