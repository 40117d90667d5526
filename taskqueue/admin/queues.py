"""The queues page: depths read from the broker, the waiting messages of a queue (decoded, paged),
revoke and purge (each after a confirmation page), pause and resume."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from .. import control, operations
from ..brokers import get_broker
from ..models import Queue
from .revoking import report_revoke

PAGE = 50


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    """Not a table of rows: the admin's queues page, with the proxy model's permissions (view to
    look, change to act)."""

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("", view(self.queues_view), name="taskqueue_queue_changelist"),
            path("messages/", view(self.messages_view), name="taskqueue_queue_messages"),
            path("purge/", view(self.purge_view), name="taskqueue_queue_purge"),
        ]

    def _context(self, request: HttpRequest, title: str, **extra) -> dict:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title,
                "can_change": self.has_change_permission(request), **extra}

    def _require_change(self, request: HttpRequest) -> None:
        if not self.has_change_permission(request):
            raise PermissionDenied

    def queues_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            self._require_change(request)
            queue = request.POST.get("queue", "")[:255]  # a queue name is at most that long everywhere
            if request.POST.get("action") == "pause" and queue:
                operations.pause(queue, request.user.get_username())
                self.message_user(request, f"Queue {queue!r} paused: workers stop taking its messages within "
                                           "a few seconds (what they already run finishes).", messages.SUCCESS)
            elif request.POST.get("action") == "resume" and queue:
                operations.resume(queue)
                self.message_user(request, f"Queue {queue!r} resumed.", messages.SUCCESS)
            return HttpResponseRedirect(request.path)
        return TemplateResponse(request, "admin/taskqueue/queues.html",
                                self._context(request, "Queues", queues=operations.queues()))

    def messages_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        queue = request.GET.get("queue", "")
        try:
            page = max(1, int(request.GET.get("page", "1")))
        except ValueError:
            page = 1
        if request.method == "POST":
            self._require_change(request)
            task_ids = operations.task_ids_of(request.POST.getlist("key"))
            if task_ids and request.POST.get("confirmed") != "yes":  # ask first, as the purge does
                return TemplateResponse(request, "admin/taskqueue/queue_revoke.html", self._context(
                    request, f"Revoke {len(task_ids)} task(s) waiting in {queue}?", queue=queue, task_ids=task_ids))
            if task_ids:  # what happened to each: a worker may have taken one since the page was read
                report_revoke(self, request, task_ids, terminate=False)
            return HttpResponseRedirect(request.get_full_path())
        waiting = operations.waiting(queue, (page - 1) * PAGE, PAGE + 1)
        info = next((q for q in operations.queues() if q.name == queue), None)
        base = reverse("admin:taskqueue_queue_messages")
        return TemplateResponse(request, "admin/taskqueue/queue_messages.html", self._context(
            request, f"Waiting in {queue}", queue=queue, info=info, waiting=waiting[:PAGE], page=page,
            unreadable=not get_broker().reads_by_key,
            first=(page - 1) * PAGE + 1,
            previous_url=f"{base}?{urlencode({'queue': queue, 'page': str(page - 1)})}" if page > 1 else None,
            next_url=f"{base}?{urlencode({'queue': queue, 'page': str(page + 1)})}" if len(waiting) > PAGE else None))

    def purge_view(self, request: HttpRequest) -> HttpResponse:
        self._require_change(request)
        queue = request.POST.get("queue") or request.GET.get("queue", "")
        if request.method == "POST" and request.POST.get("confirmed") == "yes":
            purged = control.purge(queue)
            self.message_user(request, f"Purged {purged} waiting message(s) from {queue!r}.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:taskqueue_queue_changelist"))
        info = next((q for q in operations.queues() if q.name == queue), None)
        return TemplateResponse(request, "admin/taskqueue/queue_purge.html",
                                self._context(request, f"Purge {queue}?", queue=queue, info=info))
