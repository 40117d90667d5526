"""Who may use the demo's pages and JSON endpoints: a logged-in account, with CSRF on every POST."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django import forms
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import csrf


def login_required_json(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Like `login_required`, for the endpoints the pages fetch: 401 with a reason, not a redirect
    to an HTML login page that `fetch` would follow and fail to parse."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return JsonResponse({"error": "not logged in: log in again"}, status=401)
        return view(request, *args, **kwargs)

    return wrapped


def form_errors(form: forms.Form) -> str:
    """A form's errors in one line: "seconds: Ensure this value is less than or equal to 60."."""
    return "; ".join(f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
                     for field, errors in form.errors.items())


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the JSON API says why in JSON (the pages show it); pages get Django's own."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": f"CSRF check failed: {reason}"}, status=403)
    return csrf.csrf_failure(request, reason)
