"""Group states for the result list: one query for the chords and one for the plain groups of a page."""

from __future__ import annotations

from django.db.models import Count

from .. import states
from ..models import ChordCounter, TaskResult
from .display import badge


def annotate_group_states(rows: list) -> None:
    """Set `group_state` (a badge, or "-") on each row that has a `group_id`, in two queries at most."""
    group_ids = {row.group_id for row in rows if getattr(row, "group_id", None)}
    found = _chord_states(group_ids) if group_ids else {}
    rest = group_ids - found.keys()
    if rest:
        found.update(_plain_group_states(rest))
    for row in rows:
        row.group_state = found.get(getattr(row, "group_id", None) or "", "-")


def _chord_states(group_ids: set[str]) -> dict[str, str]:
    counters = ChordCounter.objects.filter(group_id__in=group_ids).values_list("group_id", "state", "total",
                                                                                "remaining")
    return {group_id: badge(state, f"chord {state} {total - remaining}/{total}")
            for group_id, state, total, remaining in counters}


def _plain_group_states(group_ids: set[str]) -> dict[str, str]:
    by_group: dict[str, dict[str, int]] = {}
    counts = (TaskResult.objects.filter(group_id__in=group_ids).order_by().values_list("group_id", "state")
              .annotate(n=Count("id")).values_list("group_id", "state", "n"))
    for group_id, state, n in counts:
        by_group.setdefault(group_id, {})[state] = n  # type: ignore[arg-type]  # not NULL, as filtered
    return {group_id: group_state(members) for group_id, members in by_group.items()}


def group_state(members: dict[str, int]) -> str:
    """FAILURE when a member failed, SUCCESS when all succeeded, else how many of them finished."""
    total = sum(members.values())
    finished = sum(n for state, n in members.items() if state in states.READY_STATES)
    if members.get(states.FAILURE) or members.get(states.REVOKED):
        state = states.FAILURE
    elif finished == total:
        state = states.SUCCESS
    else:
        state = states.STARTED if finished else states.PENDING
    return badge(state, f"group {state} {finished}/{total}")
