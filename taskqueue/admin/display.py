"""How result pages show things: short ids, state badges, durations, times, links to lineage rows."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from .. import states

SHORT_ID = 8
_BADGE_COLOURS = {
    states.SUCCESS: "#1e7e34", states.FAILURE: "#c82333", states.REVOKED: "#6c757d",
    states.STARTED: "#0069d9", states.RETRY: "#d39e00", states.RECEIVED: "#17a2b8", states.PENDING: "#868e96",
}
_CUSTOM_STATE_COLOUR = "#6f42c1"


def short_id(value: str | None) -> str:
    """The first characters of an id, the whole id on hover."""
    if not value:
        return "-"
    shown = value if len(value) <= SHORT_ID + 1 else f"{value[:SHORT_ID]}…"
    return format_html('<code title="{}" style="white-space:nowrap">{}</code>', value, shown)


def badge(state: str, text: str | None = None) -> str:
    colour = _BADGE_COLOURS.get(state, _CUSTOM_STATE_COLOUR)
    return format_html('<span class="tq-badge" style="background:{};color:#fff;padding:1px 6px;'
                       'border-radius:8px;font-size:11px;white-space:nowrap">{}</span>', colour, text or state)


def runtime(started: datetime | None, created: datetime | None, done: datetime | None) -> timedelta | None:
    """How long a finished task took: from its start (else from its creation) to its end."""
    begin = started or created
    if done is None or begin is None:
        return None
    return max(done - begin, timedelta(0))


def duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def _local(value: datetime) -> datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value  # naive under USE_TZ = False


def to_second(value: datetime | None) -> str:
    if not value:
        return "-"
    return format_html('<span style="white-space:nowrap">{}</span>', f"{_local(value):%Y-%m-%d %H:%M:%S}")


def to_millisecond(value: datetime | None) -> str:
    if not value:
        return "-"
    local = _local(value)
    return f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} {local:%Z}".rstrip()


def task_link(task_id: str | None, *, full: bool = False) -> str:
    """A link to a task's row by its id, resolved when followed (no query to build it)."""
    if not task_id:
        return "-"
    url = reverse("admin:taskqueue_taskresult_by_id", args=[task_id])
    if full:
        return format_html('<a href="{}"><code>{}</code></a>', url, task_id)
    return format_html('<a href="{}">{}</a>', url, short_id(task_id))


def group_link(group_id: str | None, *, full: bool = False) -> str:
    """A link to a group's (or chord's) page by its id, resolved when followed."""
    if not group_id:
        return "-"
    url = reverse("admin:taskqueue_taskresult_by_group", args=[group_id])
    return format_html('<a href="{}">{}</a>', url, format_html("<code>{}</code>", group_id) if full
                       else short_id(group_id))
