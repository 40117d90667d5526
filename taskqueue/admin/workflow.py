"""The workflow page of a task (its whole canvas as a graph), resuming a failed task from its
node, and "Retry selected": the admin side of `taskqueue.workflow` and `taskqueue.resume`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

if TYPE_CHECKING:
    from django.db.models.options import Options

from .. import resume, states, workflow

_RETRY_AT_MOST = 1000  # tasks per "Retry selected": each is its own transaction and message


class WorkflowAdminMixin:
    """For TaskResultAdmin: the workflow page, the resume button and the retry action. Both
    actions are changes: they need the change permission (view-only staff get neither). The
    detail page's links are in admin/taskqueue/taskresult/change_form.html (found by name)."""

    opts: Options  # the ModelAdmin's

    def has_resume_permission(self, request) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/workflow/", wrap(self.workflow_view), name="taskqueue_taskresult_workflow"),
            path("<path:object_id>/resume/", wrap(require_POST(self.resume_view)), name="taskqueue_taskresult_resume"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"can_resume": self.has_resume_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)

    def _task(self, request, object_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        task = self.get_object(request, unquote(object_id))
        if task is None:
            raise Http404("No such task result")
        return task

    def workflow_view(self, request, object_id):
        task = self._task(request, object_id)
        graph = workflow.build(task.task_id, [task.group_id, task.parent_id, task.root_id])
        context = {"graph": graph, "current": task.task_id, "can_resume": self.has_resume_permission(request),
                   "resume_url": "admin:taskqueue_taskresult_resume", "next": request.path}
        if request.GET.get("fragment"):
            return TemplateResponse(request, "admin/taskqueue/taskresult/workflow_graph.html", context)
        context.update(self.admin_site.each_context(request), opts=self.opts, original=task,
                       title=f"Workflow of {task.task_name or 'task'} {task.task_id}")
        return TemplateResponse(request, "admin/taskqueue/taskresult/workflow.html", context)

    def resume_view(self, request, object_id):
        if not self.has_resume_permission(request):
            raise PermissionDenied
        task = self._task(request, object_id)
        try:
            self.message_user(request, resume.resume(task.task_id), messages.SUCCESS)
        except resume.NotResumable as exc:
            self.message_user(request, f"Not resumed: {exc}", messages.WARNING)
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
            target = reverse("admin:taskqueue_taskresult_workflow", args=[task.pk])
        return HttpResponseRedirect(target)

    @admin.action(description="Retry selected failed tasks (what followed them continues)", permissions=["resume"])
    def retry_selected(self, request, queryset):
        sent, refused = 0, []
        skipped = queryset.exclude(state=states.FAILURE).count()
        for task_id in queryset.filter(state=states.FAILURE).values_list("task_id", flat=True)[:_RETRY_AT_MOST]:
            try:
                resume.resume(task_id)
                sent += 1
            except resume.NotResumable as exc:
                refused.append(str(exc))
        self.message_user(request, f"Retried {sent} failed task(s).", messages.SUCCESS if sent else messages.INFO)
        if skipped:
            self.message_user(request, f"Skipped {skipped} task(s) not in FAILURE.", messages.WARNING)
        for reason in refused[:10]:
            self.message_user(request, f"Not retried: {reason}", messages.WARNING)
