"""Task, group and chord results: read-only, made for reading at any size, with actions on the tasks."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from ..models import ChordCounter, DeadLetter, GroupResult, TaskResult
from . import display, members
from .common import ReadOnlyAdmin, pretty
from .groups import annotate_group_states
from .revoking import report_revoke
from .scale import BoundedPaginator, QueueFilter, StateFilter, TaskNameFilter, WorkerFilter, search_by_id
from .workflow import WorkflowAdminMixin

LINEAGE_LOOKUPS = frozenset({"group_id", "root_id", "parent_id"})


class GroupStateChangeList(ChangeList):
    """Adds each row's group state to the page's rows in two queries, not one per row."""

    def get_results(self, request) -> None:
        super().get_results(request)
        annotate_group_states(list(self.result_list))


class ResultListAdmin(ReadOnlyAdmin):
    """No full COUNT of the table, ever: the list is bounded and the filtered count too."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice, each over the whole table
    paginator = BoundedPaginator

    def get_changelist(self, request, **kwargs):
        return GroupStateChangeList

    @admin.display(description="group")
    def group_state(self, obj):
        return getattr(obj, "group_state", "-")


@admin.register(TaskResult)
class TaskResultAdmin(WorkflowAdminMixin, ResultListAdmin):
    list_display = ("short_task_id", "task_name", "state_badge", "group_state", "queue", "worker", "retries",
                    "created", "runtime", "done", "lineage")
    list_display_links = ("short_task_id",)
    # Each filter's choices and rows come from an index (see scale.py); no date_hierarchy: its year
    # list is a DISTINCT over every row.
    list_filter = (StateFilter, TaskNameFilter, QueueFilter, WorkerFilter, "date_created")
    search_fields = ("task_id",)
    search_help_text = "A task id or its first characters; the exact id of a group, parent or root; a task name."
    list_per_page = 50
    actions = ["revoke_selected", "revoke_and_terminate", "retry_selected"]
    readonly_fields = ("full_task_id", "task_name", "state_badge", "queue", "worker", "retries", "parent_link",
                       "root_link", "group_link", "created_ms", "started_ms", "done_ms", "runtime", "args_pretty",
                       "kwargs_pretty", "result_pretty", "meta_pretty", "traceback_pretty")
    fieldsets = (
        (None, {"fields": ("full_task_id", "task_name", "state_badge", "queue", "worker", "retries")}),
        ("Lineage", {"fields": ("parent_link", "root_link", "group_link")}),
        ("Times", {"fields": ("created_ms", "started_ms", "done_ms", "runtime")}),
        ("Call and outcome", {"fields": ("args_pretty", "kwargs_pretty", "result_pretty", "meta_pretty",
                                         "traceback_pretty")}),
    )

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("id/<path:task_id>/", view(self.by_id_view), name="taskqueue_taskresult_by_id"),
            path("group/<path:group_id>/", view(self.by_group_view), name="taskqueue_taskresult_by_group"),
            *super().get_urls(),
        ]

    def by_id_view(self, request, task_id: str):
        """The row of a task id (lineage links point here, so building them costs no query)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        pk = TaskResult.objects.filter(task_id=task_id).values_list("pk", flat=True).first()
        if pk is None:
            self.message_user(request, f"No result is stored for task {task_id}: it may still be waiting in its "
                                       "queue, or its result has expired.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:taskqueue_taskresult_changelist"))
        return HttpResponseRedirect(reverse("admin:taskqueue_taskresult_change", args=[pk]))

    def by_group_view(self, request, group_id: str):
        """A group id's page: its chord, else its group, else the list of its members."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        for model in (ChordCounter, GroupResult):
            pk = model.objects.filter(group_id=group_id).values_list("pk", flat=True).first()
            if pk is not None:
                return HttpResponseRedirect(reverse(f"admin:taskqueue_{model._meta.model_name}_change", args=[pk]))
        return HttpResponseRedirect(reverse("admin:taskqueue_taskresult_changelist") + "?"
                                    + urlencode({"group_id": group_id}))

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in LINEAGE_LOOKUPS or super().lookup_allowed(lookup, value, request)

    def get_search_results(self, request, queryset, search_term):
        return search_by_id(queryset, search_term), False

    @admin.display(description="task id", ordering="task_id")
    def short_task_id(self, obj):
        return display.short_id(obj.task_id)

    @admin.display(description="task id")
    def full_task_id(self, obj):
        return format_html("<code>{}</code>", obj.task_id)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        return display.badge(obj.state)

    @admin.display(description="created", ordering="date_created")
    def created(self, obj):
        return display.to_second(obj.date_created)

    @admin.display(description="done", ordering="date_done")
    def done(self, obj):
        return display.to_second(obj.date_done)

    @admin.display(description="duration")
    def runtime(self, obj):
        return display.duration(display.runtime(obj.date_started, obj.date_created, obj.date_done))

    @admin.display(description="lineage")
    def lineage(self, obj):
        links = [(label, link) for label, link in (("parent", display.task_link(obj.parent_id)),
                                                   ("root", display.task_link(obj.root_id)),
                                                   ("group", display.group_link(obj.group_id)))
                 if link != "-" and not (label == "root" and obj.root_id == obj.task_id)]
        return format_html_join(" ", '<span style="white-space:nowrap">{} {}</span>', links) if links else "-"

    @admin.display(description="parent")
    def parent_link(self, obj):
        return display.task_link(obj.parent_id, full=True)

    @admin.display(description="root")
    def root_link(self, obj):
        return display.task_link(obj.root_id, full=True)

    @admin.display(description="group")
    def group_link(self, obj):
        return display.group_link(obj.group_id, full=True)

    @admin.display(description="created")
    def created_ms(self, obj):
        return display.to_millisecond(obj.date_created)

    @admin.display(description="started")
    def started_ms(self, obj):
        return display.to_millisecond(obj.date_started)

    @admin.display(description="done")
    def done_ms(self, obj):
        return display.to_millisecond(obj.date_done)

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
        report_revoke(self, request, list(queryset.values_list("task_id", flat=True)), terminate=False)

    @admin.action(description="Revoke and terminate selected tasks (stop them where they run)",
                  permissions=["revoke"])
    def revoke_and_terminate(self, request, queryset):
        report_revoke(self, request, list(queryset.values_list("task_id", flat=True)), terminate=True)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("date_received", "message_id", "task_name", "queue", "short_reason", "worker")
    list_filter = ("queue", "task_name", "date_received")
    search_fields = ("message_id", "task_name", "reason")
    readonly_fields = ("message_id", "task_name", "queue", "reason", "worker", "date_received", "body")

    @admin.display(description="reason")
    def short_reason(self, obj):
        return obj.reason[:80]


def _tuple_ids(member_tuples: list) -> list[str]:
    return [member[0][0] for member in member_tuples]


class MembersAdmin(ResultListAdmin):
    """A group's or chord's page: a summary of its members by state, then one page of them."""

    change_form_template = "admin/taskqueue/members_change_form.html"

    def member_ids(self, obj) -> list[str]:
        raise NotImplementedError

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None:
            ids = self.member_ids(obj)
            extra_context = {**(extra_context or {}), "members_summary": members.summary_html(members.summary(ids)),
                             "members_table": members.member_table(ids, request.GET)}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="group id")
    def short_group_id(self, obj):
        return display.short_id(obj.group_id)

    @admin.display(description="created")
    def created_ms(self, obj):
        return display.to_millisecond(obj.date_created)

    @admin.display(description="done")
    def done_ms(self, obj):
        return display.to_millisecond(obj.date_done)


@admin.register(GroupResult)
class GroupResultAdmin(MembersAdmin):
    list_display = ("short_group_id", "size", "group_state", "date_created")
    list_display_links = ("short_group_id",)
    search_fields = ("group_id",)
    list_filter = ("date_created",)
    fields = readonly_fields = ("group_id", "created_ms")

    def member_ids(self, obj) -> list[str]:
        return _tuple_ids(obj.member_ids)

    @admin.display(description="members")
    def size(self, obj):
        return len(obj.member_ids)


@admin.register(ChordCounter)
class ChordCounterAdmin(MembersAdmin):
    list_display = ("short_group_id", "state_badge", "progress", "body_task", "body_sent", "date_created",
                    "date_done")
    list_display_links = ("short_group_id",)
    list_filter = ("state", "body_sent", "date_created")
    search_fields = ("group_id", "failed_task_id")
    fields = readonly_fields = ("group_id", "state_badge", "progress", "failed_task", "body_sent", "created_ms",
                                "done_ms", "body_pretty")

    def get_changelist(self, request, **kwargs):
        return ChangeList  # a chord's own state is on its row

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("plan")  # its body's task, in the same query

    def member_ids(self, obj) -> list[str]:
        return list(obj.member_ids)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        return display.badge(obj.state)

    @admin.display(description="finished")
    def progress(self, obj):
        return f"{obj.total - obj.remaining}/{obj.total}"

    @admin.display(description="failed task")
    def failed_task(self, obj):
        return display.task_link(obj.failed_task_id, full=True)

    @admin.display(description="body")
    def body_task(self, obj):
        return (obj.body or {}).get("task", "")

    @admin.display(description="body signature")
    def body_pretty(self, obj):
        return pretty(obj.body)
