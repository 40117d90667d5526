"""Read-only admin pages for results and dead letters, with filters, search and pretty JSON."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.utils.html import format_html

from . import states
from .models import DeadLetter, TaskResult


def _pretty(value) -> str:
    if value is None:
        return "-"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, default=str))


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TaskResult)
class TaskResultAdmin(ReadOnlyAdmin):
    list_display = ("task_id", "task_name", "state", "queue", "worker", "retries", "date_created", "date_done")
    list_filter = ("state", "task_name", "queue", "worker", "date_created", "date_done")
    search_fields = ("task_id", "task_name", "parent_id", "root_id", "group_id")
    date_hierarchy = "date_created"
    actions = ["revoke_selected"]
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
        return _pretty(obj.args)

    @admin.display(description="kwargs")
    def kwargs_pretty(self, obj):
        return _pretty(obj.kwargs)

    @admin.display(description="result")
    def result_pretty(self, obj):
        return _pretty(obj.result)

    @admin.display(description="meta")
    def meta_pretty(self, obj):
        return _pretty(obj.meta)

    @admin.display(description="traceback")
    def traceback_pretty(self, obj):
        return format_html("<pre>{}</pre>", obj.traceback) if obj.traceback else "-"

    @admin.action(description="Revoke selected tasks (not yet finished)")
    def revoke_selected(self, request, queryset):
        from . import control

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
