"""A view that enqueues a django.tasks task, as an app written for Django's task API does."""

from django.http import JsonResponse
from django.views.decorators.http import require_POST


@require_POST
def enqueue_multiply(request):
    from tests.djtasks import multiply

    result = multiply.enqueue(int(request.POST["x"]), int(request.POST["y"]))
    return JsonResponse({"id": result.id, "status": result.status})
