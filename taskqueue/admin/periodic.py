"""Periodic tasks with their schedules and runs, and the rate limits workers read."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from .. import ratelimits, registry, scheduler
from ..models import CrontabSchedule, IntervalSchedule, PeriodicRun, PeriodicTask, RateLimit, TaskResult


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
