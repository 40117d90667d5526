"""Task, group and chord results: read-only, with actions on the tasks."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from .. import control, states
from ..models import ChordCounter, DeadLetter, GroupResult, TaskResult
from .common import ReadOnlyAdmin, pretty
from .workflow import WorkflowAdminMixin


@admin.register(TaskResult)
class TaskResultAdmin(WorkflowAdminMixin, ReadOnlyAdmin):
    list_display = ("task_id", "task_name", "state", "queue", "worker", "retries", "date_created", "date_done")
    list_filter = ("state", "task_name", "queue", "worker", "date_created", "date_done")
    search_fields = ("task_id", "task_name", "parent_id", "root_id", "group_id")
    date_hierarchy = "date_created"
    actions = ["revoke_selected", "retry_selected"]
    readonly_fields = ("task_id", "task_name", "state", "queue", "worker", "retries", "parent_id", "root_id",
                       "group_id", "date_created", "date_started", "date_done", "args_pretty", "kwargs_pretty",
                       "result_pretty", "meta_pretty", "traceback_pretty")
    fieldsets = (
        (None, {"fields": ("task_id", "task_name", "state", "queue", "worker", "retries")}),
        ("Lineage", {"fields": ("parent_id", "root_id", "group_id")}),
        ("Times", {"fields": ("date_created", "date_started", "date_done")}),
        ("Call and outcome", {"fields": ("args_pretty", "kwargs_pretty", "result_pretty", "meta_pretty",
                                         "traceback_pretty")}),
    )

    @admin.display(description="args")
    def args_pretty(self, obj):
        return pretty(obj.args)

    @admin.display(description="kwargs")
    def kwargs_pretty(self, obj):
        return pretty(obj.kwargs)

    @admin.display(description="result")
    def result_pretty(self, obj):
        return pretty(obj.result)

    @admin.display(description="meta")
    def meta_pretty(self, obj):
        return pretty(obj.meta)

    @admin.display(description="traceback")
    def traceback_pretty(self, obj):
        return format_html("<pre>{}</pre>", obj.traceback) if obj.traceback else "-"

    def has_revoke_permission(self, request) -> bool:
        """Revoking is a change: view-only staff see results but act on none."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    @admin.action(description="Revoke selected tasks (not yet finished)", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        ids = list(queryset.exclude(state__in=states.READY_STATES).values_list("task_id", flat=True))
        control.revoke(ids)
        self.message_user(request, f"Revoked {len(ids)} task(s).", messages.SUCCESS)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("date_received", "message_id", "task_name", "queue", "short_reason", "worker")
    list_filter = ("queue", "task_name", "date_received")
    search_fields = ("message_id", "task_name", "reason")
    readonly_fields = ("message_id", "task_name", "queue", "reason", "worker", "date_received", "body")

    @admin.display(description="reason")
    def short_reason(self, obj):
        return obj.reason[:80]


def _member_table(task_ids: list[str]):
    rows = {row.task_id: row for row in TaskResult.objects.filter(task_id__in=task_ids[:1000])}
    lines = []
    for index, task_id in enumerate(task_ids[:1000]):
        row = rows.get(task_id)
        if row is None:
            lines.append(format_html("<tr><td>{}</td><td>{}</td><td>-</td><td>PENDING</td></tr>", index, task_id))
            continue
        url = reverse("admin:taskqueue_taskresult_change", args=[row.pk])
        lines.append(format_html('<tr><td>{}</td><td><a href="{}">{}</a></td><td>{}</td><td>{}</td></tr>',
                                 index, url, task_id, row.task_name, row.state))
    more = format_html("<p>… and {} more</p>", len(task_ids) - 1000) if len(task_ids) > 1000 else ""
    return format_html("<table><tr><th>#</th><th>task id</th><th>task</th><th>state</th></tr>{}</table>{}",
                       format_html_join("", "{}", ((line,) for line in lines)), more)


def _tuple_ids(member_tuples: list) -> list[str]:
    return [member[0][0] for member in member_tuples]


@admin.register(GroupResult)
class GroupResultAdmin(ReadOnlyAdmin):
    list_display = ("group_id", "size", "date_created")
    search_fields = ("group_id",)
    list_filter = ("date_created",)
    readonly_fields = ("group_id", "date_created", "members")

    @admin.display(description="members")
    def size(self, obj):
        return len(obj.member_ids)

    @admin.display(description="members and their states")
    def members(self, obj):
        return _member_table(_tuple_ids(obj.member_ids))


@admin.register(ChordCounter)
class ChordCounterAdmin(ReadOnlyAdmin):
    list_display = ("group_id", "state", "progress", "body_task", "body_sent", "date_created", "date_done")
    list_filter = ("state", "body_sent", "date_created")
    search_fields = ("group_id", "failed_task_id")
    readonly_fields = ("group_id", "state", "total", "remaining", "failed_task_id", "body_sent", "date_created",
                       "date_done", "body_pretty", "members")

    @admin.display(description="finished")
    def progress(self, obj):
        return f"{obj.total - obj.remaining}/{obj.total}"

    @admin.display(description="body")
    def body_task(self, obj):
        return (obj.body or {}).get("task", "")

    @admin.display(description="body signature")
    def body_pretty(self, obj):
        return pretty(obj.body)

    @admin.display(description="header members and their states")
    def members(self, obj):
        return _member_table(obj.member_ids)
