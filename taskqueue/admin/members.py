"""The members of a group or chord on its page: a summary by state, then one page of rows."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import Count
from django.http import QueryDict
from django.utils.html import format_html, format_html_join

from .. import states
from ..models import TaskResult
from .display import badge, duration, runtime, task_link, to_second

MEMBERS_PER_PAGE = 100
PAGE_PARAMETER = "members"
_ROW = '<tr data-state="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>'


def summary(task_ids: list[str]) -> dict[str, int]:
    """Members by state (one aggregate on the task id index); those with no row yet are PENDING."""
    counts = dict(TaskResult.objects.filter(task_id__in=task_ids).order_by()
                  .values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    stored = sum(counts.values())
    if stored < len(task_ids):
        counts[states.PENDING] = counts.get(states.PENDING, 0) + len(task_ids) - stored
    return counts


def summary_html(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = format_html_join(" ", "{}", ((badge(state, f"{n:,} {state}"),) for state, n in sorted(counts.items())))
    return format_html("{} members: {}", f"{total:,}", parts)


def member_table(task_ids: list[str], query: QueryDict) -> str:
    """One page (MEMBERS_PER_PAGE rows) of members in definition order, with links to the others."""
    paginator = Paginator(task_ids, MEMBERS_PER_PAGE)
    page = paginator.get_page(query.get(PAGE_PARAMETER))
    offset = page.start_index() - 1 if task_ids else 0
    ids = list(page.object_list)
    rows = {row.task_id: row for row in TaskResult.objects.filter(task_id__in=ids).only(
        "task_id", "task_name", "state", "date_created", "date_started", "date_done", "retries")}
    lines = []
    for index, task_id in enumerate(ids, start=offset):
        row = rows.get(task_id)
        cells: tuple[object, ...]
        if row is None:
            cells = (states.PENDING, index, task_link(task_id), "-", badge(states.PENDING), "-", "-", "-")
        else:
            cells = (row.state, index, task_link(task_id), row.task_name, badge(row.state), row.retries,
                     duration(runtime(row.date_started, row.date_created, row.date_done)), to_second(row.date_done))
        lines.append(format_html(_ROW, *cells))
    table = format_html(
        '<table class="tq-members"><thead><tr><th>#</th><th>task id</th><th>task</th><th>state</th><th>retries</th>'
        "<th>duration</th><th>done</th></tr></thead><tbody>{}</tbody></table>",
        format_html_join("", "{}", ((line,) for line in lines)))
    return format_html("{}{}", table, _pager(page, query))


def _pager(page, query: QueryDict) -> str:
    if page.paginator.num_pages <= 1:
        return ""

    def link(number: int, text: str) -> str:
        params = query.copy()
        params[PAGE_PARAMETER] = str(number)
        return format_html('<a href="?{}">{}</a>', params.urlencode(), text)

    parts = []
    if page.has_previous():
        parts += [link(1, "« first"), link(page.previous_page_number(), "‹ previous")]
    parts.append(format_html("members {}–{} of {} (page {} of {})", page.start_index() - 1, page.end_index() - 1,
                             f"{page.paginator.count:,}", page.number, page.paginator.num_pages))
    if page.has_next():
        parts += [link(page.next_page_number(), "next ›"), link(page.paginator.num_pages, "last »")]
    return format_html('<p class="tq-pager">{}</p>', format_html_join(" · ", "{}", ((part,) for part in parts)))
