"""The workers page: live and dead workers from their consumers' leases and their records, with a
warm shutdown that the worker's own consumers pass to its supervisor (so it works across hosts)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path

from .. import operations
from ..models import WorkerRecord


@admin.register(WorkerRecord)
class WorkerAdmin(admin.ModelAdmin):
    """Not a table of rows: the admin's workers page (view to look, change to shut one down)."""

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [path("", self.admin_site.admin_view(self.workers_view), name="taskqueue_workerrecord_changelist")]

    def workers_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        can_change = self.has_change_permission(request)
        if request.method == "POST":
            if not can_change:
                raise PermissionDenied
            key = request.POST.get("worker", "")
            asked = request.POST.get("action") == "shutdown" and operations.request_shutdown(
                key, request.user.get_username())
            if asked:
                self.message_user(request, f"Warm shutdown asked of {key}: it stops taking tasks within a few "
                                           "seconds, finishes what it runs, then exits.", messages.SUCCESS)
            else:
                self.message_user(request, f"No shutdown asked: {key!r} has no record, or one was asked already.",
                                  messages.WARNING)
            return HttpResponseRedirect(request.path)
        return TemplateResponse(request, "admin/taskqueue/workers.html", {
            **self.admin_site.each_context(request), "opts": self.opts, "title": "Workers", "can_change": can_change,
            "workers": operations.workers()})
