"""The graph of a workflow: the outline of its canvas (`outline`) with each task's stored state.

A bounded number of queries whatever its size: the outline (one or two), the task rows by id (one
per 500 tasks drawn), and two per large fan-out, which is drawn as one summary node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count
from django.db.models.fields.json import KT

from . import states, store
from .models import TaskResult

COLLAPSE_OVER = 20  # a group or chord header with more members is drawn as one summary node
_BATCH = 500
_FIELDS = ("pk", "task_id", "task_name", "state", "retries", "worker", "date_started", "date_done")


@dataclass
class TaskNode:
    """One task: stored state (PENDING while it has no row), runtime in seconds, error text."""

    id: str
    task: str
    state: str = states.PENDING
    pk: int | None = None
    retries: int = 0
    runtime: float | None = None
    error: str = ""
    ran: bool = False
    kind: str = "task"

    @property
    def short_name(self) -> str:
        return self.task.rpartition(".")[2] or "task"


@dataclass
class Summary:
    """A large fan-out: member count by state (PENDING: not stored yet), and a few failed members."""

    group_id: str
    total: int
    counts: dict[str, int]
    failed: list[TaskNode]
    kind: str = "summary"

    @property
    def finished(self) -> bool:
        return self.counts.get(states.PENDING, 0) == 0 and all(s in states.READY_STATES for s in self.counts)

    @property
    def text(self) -> str:
        shown = ", ".join(f"{n:,} {state}" for state, n in sorted(self.counts.items(), key=lambda item: -item[1]))
        return f"{self.total:,} members: {shown}"


@dataclass
class Flow:
    """A chain (`children` in order), or a group or chord (`children` in parallel, a chord's `body`
    after them); `summary` instead of children for a large fan-out."""

    kind: str
    id: str | None = None
    children: list[Any] = field(default_factory=list)
    body: Any = None
    summary: Summary | None = None


@dataclass
class Graph:
    """A workflow as drawn: its root node, whether anything in it may still change, and counts."""

    key: str
    root: Any
    running: bool
    counts: dict[str, int]
    outlined: bool  # False: no outline was stored (a lone task), only this task is drawn


def build(task_id: str, lineage: list[str | None]) -> Graph:
    """The graph of the workflow a task belongs to (`lineage`: its group, parent and root ids, the
    first that leads to an outline wins)."""
    found = store.find_workflow([task_id, *lineage])
    key, outline = found if found is not None else (task_id, {"id": task_id, "task": ""})
    ids: list[str] = []
    fanouts: list[tuple[str, int]] = []
    _collect(outline, ids, fanouts)
    rows = _rows(ids)
    summaries = {group_id: _summary(group_id, total) for group_id, total in fanouts}
    counts: dict[str, int] = {}
    root = _node(outline, rows, summaries, counts)
    running = any(state not in states.READY_STATES for state in counts)
    return Graph(key, root, running, counts, found is not None)


def _collect(node: dict, ids: list[str], fanouts: list[tuple[str, int]]) -> None:
    if "id" in node:
        ids.append(node["id"])
        return
    members = node.get("members")
    if members is not None and len(members) > COLLAPSE_OVER:
        fanouts.append((node.get("group") or node["chord"], len(members)))
    else:
        for child in node.get("chain") or members or []:
            _collect(child, ids, fanouts)
    if node.get("body"):
        _collect(node["body"], ids, fanouts)


def _rows(ids: list[str]) -> dict[str, TaskNode]:
    found = {}
    for start in range(0, len(ids), _BATCH):
        for row in _values(TaskResult.objects.filter(task_id__in=ids[start:start + _BATCH])):
            found[row.id] = row
    return found


def _values(queryset, limit: int | None = None) -> list[TaskNode]:
    """Task nodes from rows, reading only the exception's type and message out of `result`."""
    rows = queryset.order_by().annotate(exc_type=KT("result__exc_type"), exc_message=KT("result__exc_message"))
    return [_task_node(values) for values in rows.values(*_FIELDS, "exc_type", "exc_message")[:limit]]


def _task_node(values: dict) -> TaskNode:
    started, done = values["date_started"], values["date_done"]
    error = ""
    if values["state"] in states.EXCEPTION_STATES and values["exc_type"]:
        error = f"{values['exc_type']}: {_message_text(values['exc_message'])}"[:300]
    return TaskNode(id=values["task_id"], task=values["task_name"], state=values["state"], pk=values["pk"],
                    retries=values["retries"], error=error, ran=bool(values["worker"] or started),
                    runtime=(done - started).total_seconds() if started and done else None)


def _message_text(raw: str | None) -> str:
    try:
        value = json.loads(raw) if raw else ""
    except ValueError:
        return raw or ""
    return " ".join(str(part) for part in value) if isinstance(value, list) else str(value)


def _summary(group_id: str, total: int) -> Summary:
    members = TaskResult.objects.filter(group_id=group_id)
    counts = dict(members.order_by().values_list("state").annotate(n=Count("id")))
    stored = sum(counts.values())
    if stored < total:
        counts[states.PENDING] = counts.get(states.PENDING, 0) + total - stored
    failed = _values(members.filter(state=states.FAILURE), limit=5)
    return Summary(group_id, total, counts, failed)


def _node(node: dict, rows: dict[str, TaskNode], summaries: dict[str, Summary], counts: dict[str, int]):
    if "id" in node:
        task = rows.get(node["id"]) or TaskNode(id=node["id"], task=node.get("task", ""))
        task.task = task.task or node.get("task", "")
        counts[task.state] = counts.get(task.state, 0) + 1
        return task
    if "chain" in node:
        return Flow("chain", children=[_node(step, rows, summaries, counts) for step in node["chain"]])
    kind = "group" if "group" in node else "chord"
    flow = Flow(kind, id=node[kind])
    if flow.id in summaries:
        flow.summary = summaries[flow.id]
        for state, n in flow.summary.counts.items():
            counts[state] = counts.get(state, 0) + n
    else:
        flow.children = [_node(member, rows, summaries, counts) for member in node["members"]]
    if node.get("body"):
        flow.body = _node(node["body"], rows, summaries, counts)
    return flow
