"""The dashboard: tasks finished and failed per queue, per minute over the last hour."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.db.models.functions import TruncMinute
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from .. import states
from ..models import Dashboard, TaskResult
from .display import to_second

MINUTES = 60
BAR_WIDTH, CHART_HEIGHT = 8, 60


@dataclass
class QueueActivity:
    queue: str
    finished: list[int] = field(default_factory=lambda: [0] * MINUTES)
    failed: list[int] = field(default_factory=lambda: [0] * MINUTES)

    @property
    def total(self) -> int:
        return sum(self.finished)

    @property
    def failures(self) -> int:
        return sum(self.failed)

    @property
    def failure_rate(self) -> str:
        return f"{100 * self.failures / self.total:.1f} %" if self.total else "-"

    @property
    def per_minute(self) -> str:
        return f"{self.total / MINUTES:.1f}"

    def chart(self, first_minute: datetime) -> str:
        return bars(self.finished, self.failed, first_minute)


def activity(now: datetime | None = None) -> tuple[datetime, list[QueueActivity]]:
    """Per queue, tasks that finished in each of the last 60 minutes, and how many of them failed.

    One query on the (state, date_done) index: finished states, done within the hour."""
    now = now or timezone.now()
    first = (now - timedelta(minutes=MINUTES - 1)).replace(second=0, microsecond=0)
    rows = (TaskResult.objects.filter(state__in=states.READY_STATES, date_done__gte=first).order_by()
            .annotate(minute=TruncMinute("date_done")).values("queue", "minute")
            .annotate(finished=Count("id"), failed=Count("id", filter=Q(state=states.FAILURE))))
    queues: dict[str, QueueActivity] = {}
    for row in rows:
        index = int((row["minute"] - first).total_seconds() // 60)
        if 0 <= index < MINUTES:
            entry = queues.setdefault(row["queue"], QueueActivity(row["queue"]))
            entry.finished[index] += row["finished"]
            entry.failed[index] += row["failed"]
    return first, sorted(queues.values(), key=lambda entry: entry.queue)


def bars(finished: list[int], failed: list[int], first_minute: datetime) -> str:
    """An inline SVG: one bar a minute, its failed part in red; a tooltip gives the figures."""
    peak = max(finished, default=0) or 1
    rects = []
    for index, (total, bad) in enumerate(zip(finished, failed, strict=True)):
        if not total:
            continue
        height = max(1, round(CHART_HEIGHT * total / peak))
        bad_height = round(height * bad / total)
        x, minute = index * BAR_WIDTH, first_minute + timedelta(minutes=index)
        minute = timezone.localtime(minute) if timezone.is_aware(minute) else minute
        tip = f"{minute:%H:%M}: {total} finished, {bad} failed"
        rects.append(format_html('<g><title>{}</title><rect x="{}" y="{}" width="{}" height="{}" fill="#79aec8"/>'
                                 '<rect x="{}" y="{}" width="{}" height="{}" fill="#c82333"/></g>', tip, x,
                                 CHART_HEIGHT - height, BAR_WIDTH - 1, height - bad_height, x,
                                 CHART_HEIGHT - bad_height, BAR_WIDTH - 1, bad_height))
    return format_html('<svg class="tq-bars" width="{}" height="{}" role="img" aria-label="tasks per minute">'
                       '<rect width="100%" height="100%" fill="#f8f8f8"/>{}</svg>', MINUTES * BAR_WIDTH,
                       CHART_HEIGHT, format_html_join("", "{}", ((rect,) for rect in rects)))


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """Listed on the admin index like a model; its page is the dashboard, for whoever may view results."""

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("taskqueue.view_taskresult")

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        first, queues = activity(now)
        rows = [(entry, entry.chart(first)) for entry in queues]
        context = {**self.admin_site.each_context(request), "title": "Task queue dashboard", "opts": self.opts,
                   "rows": rows, "since": to_second(first), "until": to_second(now), **(extra_context or {})}
        return TemplateResponse(request, "admin/taskqueue/dashboard.html", context)
