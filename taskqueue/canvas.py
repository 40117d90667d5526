"""The canvas: the primitives built from a Signature (chain, group, chord, chunks, map, starmap).

Every primitive is a dict (`dict(sig)` round-trips through JSON) with a `subtask_type`.
Building, freezing and sending happen here (sending through `producer`; a group's and a chord's
rows through `store`); what follows a finished task is the worker's (`worker/continuation.py`).

Freezing gives every task in a canvas its id before anything is sent, so the result graph
(`parent`, `GroupResult` members, the chord body) is known at once. *Completion marks*
(`group_id`, `group_index`, `chord`) are stamped on the task whose end completes a member:
the last step of a chain, the body of a chord, a collecting task behind a nested group.
"""

from __future__ import annotations

import itertools
import types
from typing import Any

from . import store
from .producer import send_many
from .result import AsyncResult, GroupResult
from .signature import _LINEAGE, MARKS, Signature, maybe_signature, signature
from .utils import new_id

__all__ = ["MARKS", "Signature", "chain", "chord", "chunks", "group", "maybe_signature", "signature", "xmap",
           "xstarmap"]


class chain(Signature, kind="chain"):
    """Run tasks one after another, each receiving the previous one's return value."""

    def __init__(self, *tasks: Any, **options: Any):
        if len(tasks) == 1 and isinstance(tasks[0], dict) and tasks[0].get("subtask_type") == "chain":
            Signature.__init__(self, tasks[0])
            return
        if len(tasks) == 1 and not isinstance(tasks[0], dict):
            tasks = tuple(tasks[0])
        steps: list[Signature] = []
        for step in map(maybe_signature, tasks):
            steps.extend(step.tasks if type(step) is chain and not step.options else [step])
        Signature.__init__(self, "taskqueue.chain", (), {"tasks": [dict(s) for s in steps]}, options,
                           subtask_type="chain")

    @property
    def tasks(self) -> list[Signature]:
        return [maybe_signature(step) for step in self["kwargs"]["tasks"]]

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, dict) and not self.options:
            return chain(*self.tasks, maybe_signature(other))
        return Signature.__or__(self, other)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def _steps(self) -> list[Signature]:
        """Normalised steps with the chain's own callbacks pushed onto them (errbacks on every step)."""
        steps = _normalise(self.tasks)
        for errback in self["options"].get("link_error", []):
            for step in steps:
                step.link_error(errback)
        for callback in self["options"].get("link", []):
            steps[-1].link(callback)
        return steps

    def freeze(self, _id: str | None = None, **marks: Any) -> AsyncResult:
        steps = self._steps()
        if not steps:
            raise ValueError("an empty chain has nothing to run")
        lineage = {key: marks.pop(key) for key in _LINEAGE if marks.get(key)}
        if any(marks.get(key) is not None for key in MARKS):
            steps[-1] = _completable(steps[-1])
        previous = root = None
        for index, step in enumerate(steps):
            last = index == len(steps) - 1
            step_marks = dict(marks) if last else {}
            if previous is None:
                step_marks.update(lineage)
            else:
                step_marks.update(parent_id=previous.id, root_id=lineage.get("root_id") or root.id)
            result = step.freeze(_id if last else None, **step_marks)
            if previous is None:
                root = result
            else:
                _set_deepest_parent(result, previous)
            previous = result
        self["kwargs"]["tasks"] = [dict(step) for step in steps]
        self["options"].pop("link_error", None)
        self["options"].pop("link", None)
        return previous

    def apply_async(self, args: tuple | list = (), kwargs: dict | None = None, **options: Any) -> AsyncResult:
        frozen = self.clone()
        marks = {key: options.pop(key) for key in (*MARKS, *_LINEAGE) if key in options}
        result = frozen.freeze(options.pop("task_id", None), **marks)
        first, *rest = frozen.tasks
        if first.subtask_type:  # a lone group or chord: it is the whole chain
            first.apply_async(args, kwargs, **options)
        else:  # the rest travels in the message, next step last (as in Celery's protocol)
            first.apply_async(args, kwargs, chain=[dict(step) for step in reversed(rest)], **options)
        return result


class group(Signature, kind="group"):
    """Run tasks in parallel; the result is a GroupResult in definition order."""

    def __init__(self, *tasks: Any, **options: Any):
        if len(tasks) == 1 and isinstance(tasks[0], dict) and tasks[0].get("subtask_type") == "group":
            Signature.__init__(self, tasks[0])
            return
        if len(tasks) == 1 and not isinstance(tasks[0], dict):
            tasks = tuple(tasks[0])
        members = [dict(maybe_signature(t)) for t in tasks]
        Signature.__init__(self, "taskqueue.group", (), {"tasks": members}, options, subtask_type="group")

    @property
    def tasks(self) -> list[Signature]:
        return [maybe_signature(member) for member in self["kwargs"]["tasks"]]

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, dict):
            return chord(self, maybe_signature(other))
        return NotImplemented

    def __call__(self, *args: Any, **kwargs: Any) -> GroupResult:
        return self.apply_async(args, kwargs)

    def freeze(self, _id: str | None = None, **marks: Any) -> GroupResult:
        """Members are marked with this group's id and their index; `chord` marks pass through."""
        group_id = self["options"].setdefault("task_id", _id or new_id())
        lineage = {key: marks[key] for key in _LINEAGE if marks.get(key)}
        members, results = [], []
        for index, member in enumerate(self.tasks):
            for errback in self["options"].get("link_error", []):
                member.link_error(errback)
            member = _completable(member)
            results.append(member.freeze(group_id=group_id, group_index=index, chord=marks.get("chord"),
                                         **lineage))
            members.append(dict(member))
        self["kwargs"]["tasks"] = members
        self["options"].pop("link_error", None)
        return GroupResult(group_id, results)

    def apply_async(self, args: tuple | list = (), kwargs: dict | None = None, **options: Any) -> GroupResult:
        frozen = self.clone()
        marks = {key: options.pop(key) for key in (*MARKS, *_LINEAGE) if key in options}
        result = frozen.freeze(options.pop("task_id", None), **marks)
        store.save_group(result.id, [r.as_tuple() for r in result.results])
        frozen._send_members(args, kwargs, options)
        return result

    def _send_members(self, args, kwargs, options: dict) -> None:
        plain, composite = [], []
        for member in self.tasks:
            (composite if member.subtask_type else plain).append(member)
        send_many([(m, *m._call_args(tuple(args or ()), kwargs), m._send_options(options)) for m in plain])
        for member in composite:
            member.apply_async(args, kwargs, **options)


class chord(Signature, kind="chord"):
    """A group whose results, in order, are passed as one list to a body once all have finished."""

    def __init__(self, header: Any, body: Any = None, **options: Any):
        if isinstance(header, dict) and header.get("subtask_type") == "chord" and body is None:
            Signature.__init__(self, header)
            return
        header = header if isinstance(header, group) else group(header)
        Signature.__init__(self, "taskqueue.chord", (), {
            "header": dict(header), "body": dict(maybe_signature(body)) if body is not None else None,
        }, options, subtask_type="chord")

    header = property(lambda self: group(self["kwargs"]["header"]))
    body = property(lambda self: maybe_signature(self["kwargs"]["body"]) if self["kwargs"]["body"] else None)
    tasks = property(lambda self: self.header.tasks)

    def __call__(self, body: Any = None, **options: Any) -> AsyncResult:
        if body is not None:
            return chord(self.header, body, **self.options).apply_async(**options)
        return self.apply_async(**options)

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, dict):
            return chain(self, maybe_signature(other))
        return NotImplemented

    def link_error(self, errback: dict) -> dict:
        self["kwargs"]["body"] = dict(self.body.on_error(errback))
        return errback

    def link(self, callback: dict) -> dict:
        body = self.body
        body.link(callback)
        self["kwargs"]["body"] = dict(body)
        return callback

    def freeze(self, _id: str | None = None, **marks: Any) -> AsyncResult:
        if self.body is None:
            raise ValueError("a chord needs a body: chord(header, body) or chord(header)(body)")
        header, body = self.header, self.body
        group_id = header["options"].setdefault("task_id", new_id())
        lineage = {key: marks.pop(key) for key in _LINEAGE if marks.get(key)}
        body_result = body.freeze(_id, parent_id=group_id, root_id=lineage.get("root_id"), **marks)
        header_result = header.freeze(group_id, chord={"group_id": group_id}, **lineage)
        _set_deepest_parent(body_result, header_result)
        self["kwargs"]["header"], self["kwargs"]["body"] = dict(header), dict(body)
        self._header_result = header_result
        return body_result

    def apply_async(self, args: tuple | list = (), kwargs: dict | None = None, **options: Any) -> AsyncResult:
        frozen = self.clone()
        marks = {key: options.pop(key) for key in (*MARKS, *_LINEAGE) if key in options}
        result = frozen.freeze(options.pop("task_id", None), **marks)
        header = frozen.header
        if not header.tasks:  # nothing to wait for: the body runs with []
            frozen.body.apply_async(([],))
            return result
        store.create_chord(header.id, [(result.id, result.task_name or "", result.as_tuple())
                                       for result in frozen._header_result.results], dict(frozen.body))
        header._send_members(args, kwargs, options)
        return result


class chunks(Signature, kind="chunks"):
    """Split `items` into chunks of `n` calls of `task`; each chunk runs as one message."""

    def __init__(self, task: Any, it: Any = None, n: int | None = None, **options: Any):
        if isinstance(task, dict) and task.get("subtask_type") == "chunks":
            Signature.__init__(self, task)
            return
        items = [list(item) if not isinstance(item, dict) else item for item in _materialise(it)]
        Signature.__init__(self, "taskqueue.chunks", (),
                           {"task": dict(maybe_signature(task)), "it": items, "n": int(n)}, options,
                           subtask_type="chunks")

    def group(self) -> group:
        task, items, n = self["kwargs"]["task"], self["kwargs"]["it"], self["kwargs"]["n"]
        return group(xstarmap(task, items[i:i + n]) for i in range(0, len(items), n))

    def apply_async(self, args: tuple | list = (), kwargs: dict | None = None, **options: Any) -> GroupResult:
        return self.group().apply_async(args, kwargs, **{**self.options, **options})

    def __call__(self, **options: Any) -> GroupResult:
        return self.apply_async(**options)


def xmap(task: Any, it: Any) -> Signature:
    """One message calling `task(item)` for each item, in order."""
    return Signature("taskqueue.map", (), {"task": dict(maybe_signature(task)), "it": _materialise(it)},
                     subtask_type=None)


def xstarmap(task: Any, it: Any) -> Signature:
    """One message calling `task(*item)` for each item, in order."""
    items = [list(item) for item in _materialise(it)]
    return Signature("taskqueue.starmap", (), {"task": dict(maybe_signature(task)), "it": items})




def _normalise(steps: list[Signature]) -> list[Signature]:
    """Tasks, then at most one group or chord that takes the rest of the chain as its body."""
    for index, step in enumerate(steps):
        rest = steps[index + 1:]
        if isinstance(step, group) and rest:
            return steps[:index] + [chord(step, _join(rest))]
        if isinstance(step, chord) and rest:
            return steps[:index] + [chord(step.header, _join([step.body, *rest]), **step.options)]
        if type(step) is chain:  # a chain with options of its own, kept apart by chain()
            return steps[:index] + step._steps() + (_normalise(rest) if rest else [])
    return steps


def _completable(sig: Signature) -> Signature:
    """A nested group cannot carry completion marks: it completes through a collecting task."""
    return chord(sig, Signature("taskqueue.collect")) if isinstance(sig, group) else sig


def _join(steps: list[Signature]) -> Signature:
    return steps[0] if len(steps) == 1 else chain(*steps)


def _set_deepest_parent(result, parent) -> None:
    """Hang `parent` above the first node of `result`'s own lineage (a chord body's chain, say)."""
    node = result
    seen = 0
    while getattr(node, "_parent", None) is not None and seen < 10_000:
        node = node._parent
        seen += 1
    if node is not parent:
        node.parent = parent


def _materialise(items: Any) -> list:
    """Lists for ranges, generators, zips and maps, so they can travel as JSON."""
    if isinstance(items, (range, types.GeneratorType, zip, map, filter, itertools.islice)):
        items = list(items)
    return [list(item) if isinstance(item, (range, types.GeneratorType)) else item for item in items]
