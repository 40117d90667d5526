"""Admin: read-only task, group and chord results and dead letters; editable periodic tasks."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from . import control, ratelimits, registry, scheduler, states
from .models import (
    ChordCounter,
    CrontabSchedule,
    DeadLetter,
    GroupResult,
    IntervalSchedule,
    PeriodicRun,
    PeriodicTask,
    RateLimit,
    TaskResult,
)


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
        return _pretty(obj.body)

    @admin.display(description="header members and their states")
    def members(self, obj):
        return _member_table(obj.member_ids)


class RateLimitForm(forms.ModelForm):
    class Meta:
        model = RateLimit
        fields = ("task_name", "rate")

    def clean_rate(self) -> str:
        try:
            ratelimits.parse(self.cleaned_data["rate"])
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        return self.cleaned_data["rate"]


@admin.register(RateLimit)
class RateLimitAdmin(admin.ModelAdmin):
    """Change a task's rate_limit while workers run: they read the rates every few seconds."""

    form = RateLimitForm
    list_display = ("task_name", "rate")


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "date_changed")


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone")


class PeriodicRunInline(admin.TabularInline):
    model = PeriodicRun
    extra = 0
    can_delete = False
    max_num = 0
    fields = ("slot", "date_sent", "result_link")
    readonly_fields = fields
    ordering = ["-slot"]

    @admin.display(description="result")
    def result_link(self, run):
        row = TaskResult.objects.filter(task_id=run.task_id).only("pk", "state").first()
        if row is None:
            return format_html("{} (not stored yet)", run.task_id)
        url = reverse("admin:taskqueue_taskresult_change", args=[row.pk])
        return format_html('<a href="{}">{}</a> {}', url, run.task_id, row.state)


class PeriodicTaskForm(forms.ModelForm):
    """The task is chosen from those registered (every installed app's tasks.py), so a misspelt
    name cannot send every run to the dead letters."""

    task = forms.ChoiceField()

    class Meta:
        model = PeriodicTask
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = sorted(name for name in registry.all_tasks() if not name.startswith("taskqueue."))
        self.fields["task"].choices = [("", "---------")] + [(name, name) for name in names]
        self.fields["task"].help_text = PeriodicTask._meta.get_field("task").help_text


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(admin.ModelAdmin):
    form = PeriodicTaskForm
    list_display = ("name", "task", "schedule", "enabled", "last_run_at", "total_run_count")
    list_filter = ("enabled", "task")
    search_fields = ("name", "task", "description")
    readonly_fields = ("last_run_at", "total_run_count", "date_changed")
    inlines = [PeriodicRunInline]
    actions = ["run_now", "enable", "disable"]

    @admin.display(description="schedule")
    def schedule(self, obj):
        return obj.interval or obj.crontab or (f"once at {obj.run_at:%Y-%m-%d %H:%M:%S}" if obj.run_at else "-")

    @admin.action(description="Run selected tasks now", permissions=["change"])
    def run_now(self, request, queryset):
        for periodic in queryset:
            scheduler.run_now(periodic)
        self.message_user(request, f"Sent {queryset.count()} task(s).", messages.SUCCESS)

    @admin.action(description="Enable selected", permissions=["change"])
    def enable(self, request, queryset):
        queryset.update(enabled=True)

    @admin.action(description="Disable selected", permissions=["change"])
    def disable(self, request, queryset):
        queryset.update(enabled=False)
