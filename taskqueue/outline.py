"""The outline of an applied canvas: its chains, groups and chords with every task id, as frozen.

Written once per applied canvas (never for a lone task's `delay()`), so the workflow view can draw
the tasks that have not run yet. Its key is the canvas's root; tasks of nested canvases whose
lineage does not lead to that key (the later steps of a chain inside a group, say) get alias keys.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from . import store

_applying: ContextVar[frozenset[str]] = ContextVar("taskqueue_outline_applying", default=frozenset())


def record(frozen: dict, result: Any) -> Any:
    """Store the outline of a canvas just frozen by its outermost apply_async; returns `result`.

    Inner applies (a group's chain members, a chain's lone chord) are part of the outline already:
    their first task is known from the outer one. A canvas sent as what follows a task (a chain's
    chord step, a chord's body) carries lineage from the recorded canvas."""
    first = _first_task(frozen)
    if first is None:
        return result
    options = first.get("options") or {}
    if options.get("parent_id") or options.get("root_id") or options.get("task_id") in _applying.get():
        return result
    tasks: list[dict] = []
    outline = describe(frozen, tasks)
    _applying.set(frozenset(task["options"].get("task_id") for task in tasks))
    key = _key(outline)
    store.save_workflow(key, outline, _aliases(key, tasks))
    return result


def describe(sig: dict, tasks: list[dict]) -> dict:
    """The outline node of a frozen signature: {"id", "task"}, {"chain": [...]},
    {"group": id, "members": [...]} or {"chord": id, "members": [...], "body": ...}; the task
    signatures met are appended to `tasks`."""
    kind = sig.get("subtask_type")
    kwargs = sig.get("kwargs") or {}
    if kind == "chain":
        return {"chain": [describe(step, tasks) for step in kwargs.get("tasks", [])]}
    if kind == "group":
        return {"group": sig["options"].get("task_id"), "members": [describe(m, tasks) for m in kwargs["tasks"]]}
    if kind == "chord":
        header = kwargs["header"]
        members = [describe(member, tasks) for member in header["kwargs"]["tasks"]]
        return {"chord": header["options"].get("task_id"), "members": members, "body": describe(kwargs["body"], tasks)}
    tasks.append(sig)
    return {"id": sig["options"].get("task_id"), "task": sig.get("task", "")}


def task_ids(node: dict) -> list[str]:
    """Every task id of an outline node, in order."""
    if "id" in node:
        return [node["id"]]
    children = node.get("chain") or node.get("members") or []
    ids = [task_id for child in children for task_id in task_ids(child)]
    return ids + (task_ids(node["body"]) if node.get("body") else [])


def _first_task(sig: dict) -> dict | None:
    kind = sig.get("subtask_type")
    kwargs = sig.get("kwargs") or {}
    if kind in ("chain", "group"):
        return _first_task(kwargs["tasks"][0]) if kwargs.get("tasks") else None
    if kind == "chord":
        members = kwargs["header"]["kwargs"]["tasks"]
        return _first_task(members[0] if members else kwargs["body"])
    return sig


def _key(node: dict) -> str:
    if "chain" in node:
        return _key(node["chain"][0])
    return node.get("id") or node.get("group") or node["chord"]


def _aliases(key: str, tasks: list[dict]) -> list[str]:
    """Keys that every task's row (by its id, root, group or parent id) can reach the outline by."""
    known, aliases = {key}, []
    for sig in tasks:
        options = sig["options"]
        lineage = (options.get("task_id"), options.get("root_id"), options.get("group_id"), options.get("parent_id"))
        if known.isdisjoint(lineage):
            alias = options.get("group_id") or options.get("root_id") or options.get("task_id")
            known.add(alias)
            aliases.append(alias)
    return aliases
