"""The canvas: chain, group and chord (chunks, map and starmap are in `signature`).

Every primitive is a dict (`dict(sig)` round-trips through JSON) with a `subtask_type`. This module
builds, freezes and sends (through `producer`; rows through `store`); what follows a finished task
is the worker's (`worker/continuation.py`). Shapes follow Celery's: `chain(a, b)` is `a | b`, a group
followed by more is a chord, a chord followed by more takes it into its body, a one-member group is
its member, and groups nested in a group or chord header are flattened.

Freezing gives every task its id before anything is sent, so the result graph is known at once.
*Completion marks* (`group_id`, `group_index`, `chord`) go on the task whose end completes a
member: a chain's last step, a chord's body, a collecting task behind a group ending a chain.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from . import outline, store
from . import signature as _sig
from .producer import send_many
from .result import AsyncResult, GroupResult
from .signature import MARKS, Signature, chunks, maybe_signature, signature, xmap, xstarmap
from .utils import new_id

_NOT_PASSED = ("task_id", "chain", *_sig.FREEZE_OPTIONS, "link", "link_error")  # not for a chord's parts
__all__ = ["MARKS", "Signature", "chain", "chord", "chunks", "group", "maybe_signature", "signature",
           "xmap", "xstarmap"]


class chain(Signature, kind="chain"):
    """Run tasks one after another, each receiving the previous one's return value."""

    def __init__(self, *tasks: Any, **options: Any):
        if len(tasks) == 1 and type(tasks[0]) is dict and tasks[0].get("subtask_type") == "chain":
            Signature.__init__(self, tasks[0])  # rebuilt from a dict (after JSON): as it was
            return
        if len(tasks) == 1 and not isinstance(tasks[0], dict):
            tasks = tuple(tasks[0])
        steps = [maybe_signature(task) for task in tasks]
        if not options:  # as `a | b | c`; Celery too keeps a chain with options as given
            joined: list[Signature] = []
            for step in steps:
                _append(joined, step)
            steps = joined
        Signature.__init__(self, "taskqueue.chain", (), {"tasks": [dict(s) for s in steps]}, options,
                           subtask_type="chain")

    @property
    def tasks(self) -> list[Signature]:
        return [maybe_signature(step) for step in self["kwargs"]["tasks"]]

    def unchain_tasks(self) -> list[Signature]:
        """Copies of the steps with the chain's link on the last one and its link_error on all."""
        return self._with_callbacks([step.clone() for step in self.tasks])

    def _with_callbacks(self, steps: list[Signature]) -> list[Signature]:
        for callback in _sig.callbacks(self["options"].get("link")) if steps else ():
            steps[-1].link(callback)
        for errback in _sig.callbacks(self["options"].get("link_error")):
            for step in steps:
                step.link_error(errback)
        return steps

    def __or__(self, other: Any) -> Signature:
        if not isinstance(other, dict):
            return NotImplemented
        if isinstance(other := maybe_signature(other), group) and not self.tasks:
            return _unrolled(other)
        return chain(*self.unchain_tasks(), other)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def _prepared(self) -> list[Signature]:
        """The steps as they run: tasks, then at most one group or chord, which takes the rest of
        the chain. Nested chains are spliced in, one-member groups unrolled, empty groups dropped
        (unless alone); the chain's own link goes to the last step, its link_error to all."""
        steps: list[Signature] = []
        pending = deque(maybe_signature(step) for step in self["kwargs"]["tasks"])
        while pending:
            step = pending.popleft()
            if isinstance(step, chunks):
                step = step.group()
            if isinstance(step, group):
                step = _unrolled(step)
            if isinstance(step, chain):
                pending.extendleft(reversed(step.unchain_tasks()))
                continue
            if isinstance(step, group) and not step["kwargs"]["tasks"] and (steps or pending):
                continue
            if pending and isinstance(step, (group, chord)):  # the rest of the chain is its body
                body = list(pending) if isinstance(step, group) else [step.body, *pending]
                joined = body[0] if len(body) == 1 else chain(*body)
                step = chord(step, joined) if isinstance(step, group) else chord(step.header, joined, **step.options)
                pending.clear()
            steps.append(step)
        return self._with_callbacks(steps)

    # Celery's canvas: a chain's call gives its last step's result, a group's a GroupResult.
    def freeze(  # type: ignore[override]
            self, _id: str | None = None, group_id: str | None = None, chord: dict | None = None,
            root_id: str | None = None, parent_id: str | None = None,
            group_index: int | None = None) -> AsyncResult | GroupResult | None:
        """Give every step its id; returns the last step's result (None for an empty chain), whose
        id becomes `chain.id`. Completion marks go on the last step; the first is the later ones' root."""
        steps = self._prepared()
        completing = group_id is not None or chord is not None or group_index is not None
        if steps and completing:
            steps[-1] = _completable(steps[-1])
        previous = None
        for index, step in enumerate(steps):
            lineage: dict[str, Any] = {"root_id": root_id,
                                       "parent_id": previous.id if previous is not None else parent_id}
            if index == len(steps) - 1:
                result = step.freeze(_id, group_id=group_id, chord=chord, group_index=group_index, **lineage)
            else:
                result = step.freeze(**lineage)
            if previous is None:
                root_id = root_id or result.id
            else:
                _sig.set_deepest_parent(result, previous)
            previous = result
        self["kwargs"]["tasks"] = [dict(step) for step in steps]
        self["options"].pop("link", None), self["options"].pop("link_error", None)
        if previous is not None:
            self["options"]["task_id"] = previous.id
        return previous

    def apply_async(  # type: ignore[override]
            self, args: tuple | list = (), kwargs: dict | None = None,
            **options: Any) -> AsyncResult | GroupResult | None:
        """Send the first step (the rest travels in its message, next step last, as in Celery's
        protocol); returns the last step's result, or None for an empty chain."""
        frozen = self.clone()._linked(options)
        options = {**{k: v for k, v in frozen["options"].items() if k not in ("link", "link_error")}, **options}
        task_id = options.pop("task_id", None)
        result = outline.record(frozen, frozen.freeze(task_id, **_sig.freeze_args(options)))
        if result is None:
            return None
        if frozen.args:  # partial args of the chain itself (clone(args)), as in Celery
            args = frozen.args if frozen.immutable else (*args, *frozen.args)
        first, *rest = frozen.tasks
        if first.subtask_type:  # a lone group or chord: it is the whole chain
            return first.apply_async(args, kwargs, **options)
        first.apply_async(args, kwargs, chain=[dict(step) for step in reversed(rest)], **options)
        return result

    def __repr__(self) -> str:
        steps = self.tasks
        return _sig.shorter_repr(steps[0]["task"], " | ".join(repr(step) for step in steps)) if steps else (
            f"<chain@{id(self):#x}: empty>")


class group(Signature, kind="group"):
    """Run tasks in parallel; the result is a GroupResult in definition order."""

    def __init__(self, *tasks: Any, **options: Any):
        if len(tasks) == 1 and type(tasks[0]) is dict and tasks[0].get("subtask_type") == "group":
            Signature.__init__(self, tasks[0])  # rebuilt from a dict (after JSON): as it was
            return
        if len(tasks) == 1:
            only = tasks[0]
            if isinstance(only, group):
                tasks = tuple(only["kwargs"]["tasks"])
            elif not isinstance(only, dict):
                tasks = tuple(only)
        members = [dict(maybe_signature(t)) for t in tasks]
        Signature.__init__(self, "taskqueue.group", (), {"tasks": members}, options, subtask_type="group")

    @property
    def tasks(self) -> list[Signature]:
        return [maybe_signature(member) for member in self["kwargs"]["tasks"]]

    def _set_members(self, members: list[Signature]) -> None:
        self["kwargs"]["tasks"] = [dict(member) for member in members]

    def _each_member(self, change) -> None:
        members = self.tasks
        for index, member in enumerate(members):
            change(index, member)
        self._set_members(members)

    def __or__(self, other: Any) -> Signature:
        if not isinstance(other, dict):
            return NotImplemented
        other = maybe_signature(other)
        if isinstance(other, group) and not other["kwargs"]["tasks"]:
            return self
        return chord(self, other)

    def __call__(self, *args: Any, **options: Any) -> GroupResult:
        return self.apply_async(args, **options)

    def link(self, callback: dict) -> dict:
        """As Celery: made immutable, it follows the first member only (use a chord for results)."""
        immutable = maybe_signature(callback).clone().set(immutable=True)
        self._each_member(lambda index, member: member.link(immutable) if index == 0 else None)
        return callback

    def link_error(self, errback: dict) -> dict:
        """Every member gets the errback (called once per failing member)."""
        self._each_member(lambda _, member: member.link_error(errback))
        return errback

    def set_immutable(self, immutable: bool) -> None:
        self._each_member(lambda _, member: member.set_immutable(immutable))

    def skew(self, start: float = 1.0, stop: float | None = None, step: float = 1.0) -> group:
        """Countdowns start, start + step, ... for the members, none over `stop` (Celery's skew)."""
        countdowns = _sig.fxrange(start, stop, step)
        self._each_member(lambda _, member: member.set(countdown=next(countdowns)))
        return self

    def freeze(  # type: ignore[override]  # a GroupResult, as in Celery
            self, _id: str | None = None, group_id: str | None = None, chord: dict | None = None,
            root_id: str | None = None, parent_id: str | None = None, group_index: int | None = None) -> GroupResult:
        """Fix the group's id (once) and its members', with nested groups flattened into it; members
        are marked with the group's id, their index and `chord`."""
        gid = self["options"]["task_id"] = self["options"].get("task_id") or _id or group_id or new_id()
        members, results = [], []
        for index, member in enumerate(_flattened(self.tasks)):
            member = _completable(member)
            results.append(member.freeze(group_id=gid, group_index=index, chord=chord, root_id=root_id,
                                         parent_id=parent_id))
            members.append(member)
        self._set_members(members)
        return GroupResult(gid, results)

    def apply_async(  # type: ignore[override]  # a GroupResult, as in Celery
            self, args: tuple | list = (), kwargs: dict | None = None, **options: Any) -> GroupResult:
        if options.get("link") is not None:
            raise TypeError("Cannot add link to group: use a chord")
        if options.get("link_error") is not None:
            raise TypeError("Cannot add link to group: do that on individual tasks")
        options.pop("link", None), options.pop("link_error", None)
        lone = _lone_chain_ending_in_group(self)
        if lone is not None and not any(options.get(key) is not None for key in MARKS):
            return lone.apply_async(args, kwargs, **options)  # type: ignore[return-value]  # that group's, as in Celery
        frozen = self.clone()
        result = outline.record(frozen, frozen.freeze(options.pop("task_id", None), **_sig.freeze_args(options)))
        store.save_group(result.id, [r.as_tuple() for r in result.results])
        frozen._send_members(args, kwargs, options)
        return result

    def _send_members(self, args, kwargs, options: dict) -> None:
        members = self.tasks
        plain = [member for member in members if not member.subtask_type]
        composite = [member for member in members if member.subtask_type]
        send_many([(m, *m._call_args(tuple(args or ()), kwargs), m._send_options(options)) for m in plain])
        for member in composite:
            member.apply_async(args, kwargs, **options)

    def __repr__(self) -> str:
        members = self.tasks
        return _sig.shorter_repr(members[0]["task"], f"group({members!r})") if members else "group(<empty>)"


class chord(Signature, kind="chord"):
    """A group whose results, in order, are passed as one list to a body once all have finished."""

    def __init__(self, header: Any, body: Any = None, **options: Any):
        if type(header) is dict and header.get("subtask_type") == "chord" and body is None:
            Signature.__init__(self, header)  # rebuilt from a dict (after JSON): as it was
            return
        header = maybe_signature(header) if isinstance(header, dict) else header
        if not isinstance(header, group):  # a chain's steps are the members, as Celery's _maybe_group makes them
            header = group(header.tasks if isinstance(header, chain) else header)
        Signature.__init__(self, "taskqueue.chord", (), {
            "header": dict(header), "body": dict(maybe_signature(body)) if body is not None else None,
        }, options, subtask_type="chord")

    header = property(lambda self: group(self["kwargs"]["header"]))
    body = property(lambda self: maybe_signature(self["kwargs"]["body"]) if self["kwargs"]["body"] else None)
    tasks = property(lambda self: self.header.tasks)

    def __call__(self, body: Any = None, **options: Any) -> AsyncResult:
        return (chord(self.header, body, **self.options) if body is not None else self).apply_async(**options)

    def __or__(self, other: Any) -> Signature:
        """`chord | task` (a chord, a one-member group) extends the body; anything else makes a chain."""
        if not isinstance(other, dict):
            return NotImplemented
        other = maybe_signature(other)
        if isinstance(other, group):
            other = _unrolled(other)
        if isinstance(other, (group, chain)) or self.body is None:
            return chain(self, other)
        return _with_body(self, self.body | other)

    def link_error(self, errback: dict) -> dict:
        """On the body (Celery's default): called once if any header task or the body fails."""
        self["kwargs"]["body"] = dict(self.body._linked({"link_error": errback}))
        return errback

    def link(self, callback: dict) -> dict:
        self["kwargs"]["body"] = dict(self.body._linked({"link": callback}))
        return callback

    def set_immutable(self, immutable: bool) -> None:
        """The header's tasks only, as in Celery."""
        header = self.header
        header.set_immutable(immutable)
        self["kwargs"]["header"] = dict(header)

    def freeze(self, _id: str | None = None, group_id: str | None = None, chord: dict | None = None,
               root_id: str | None = None, parent_id: str | None = None,
               group_index: int | None = None) -> AsyncResult:
        """The header is frozen as a group counted by this chord, the body with the completion
        marks given; returns the body's result, whose parent is the header's GroupResult."""
        if self.body is None:
            raise ValueError("a chord needs a body: chord(header, body) or chord(header)(body)")
        header, body = self.header, self.body
        gid = header["options"].get("task_id") or new_id()
        header_result = header.freeze(gid, chord={"group_id": gid}, root_id=root_id, parent_id=parent_id)
        body_result = body.freeze(_id, group_id=group_id, chord=chord, group_index=group_index, root_id=root_id,
                                  parent_id=header_result.id)
        _sig.set_deepest_parent(body_result, header_result)
        self["kwargs"]["header"], self["kwargs"]["body"] = dict(header), dict(body)
        self._header_result = header_result
        return body_result

    def apply_async(self, args: tuple | list = (), kwargs: dict | None = None, **options: Any) -> AsyncResult:
        frozen = self.clone()._linked(options)
        result = outline.record(frozen, frozen.freeze(options.pop("task_id", None), **_sig.freeze_args(options)))
        # the chord's own options and the call's go to the header's tasks and the body (Celery's _chord.run)
        options = {k: v for k, v in {**frozen["options"], **options}.items() if k not in _NOT_PASSED}
        frozen["kwargs"]["body"]["options"].update(options)
        header = frozen.header
        if not header["kwargs"]["tasks"]:  # nothing to wait for: the body runs with []
            frozen.body.apply_async(([],))
            return result
        store.create_chord(header.id, [(result.id, result.task_name or "", result.as_tuple())
                                       for result in frozen._header_result.results], dict(frozen.body))
        header._send_members(args, kwargs, options)
        return result

    def __repr__(self) -> str:
        body = self.body
        if body is None:
            return f"<chord without body: {self.tasks!r}>"
        if isinstance(body, chain) and body.tasks:
            first, *later = body.tasks
            return _sig.shorter_repr(first["task"], f"%({first.reprcall(self.tasks)} | {chain(*later)!r})")
        return "%" + _sig.shorter_repr(body["task"], body.reprcall(self.tasks))


def _append(steps: list[Signature], sig: Signature) -> None:
    """`steps | sig`, as Celery's chain.__or__ does it (without building a chain per step)."""
    if isinstance(sig, group):
        sig = _unrolled(sig)
    if isinstance(sig, chain):
        for step in (sig.unchain_tasks() if sig["kwargs"]["tasks"] else ()):
            _append(steps, step)
        return
    last = steps[-1] if steps else None
    if isinstance(last, chord) and (isinstance(sig, group) or not isinstance(sig, chord)):
        steps[-1] = _with_body(last, last.body | sig)  # a chord followed by more: its body grows
    elif isinstance(last, group) and not isinstance(sig, group):
        steps[-1] = chord(last, sig)  # a group followed by a task (or a chord) becomes a chord
        if len(steps) > 1 and isinstance(steps[-2], chord):  # two chords in a row: one, longer body
            steps[-2:] = [_with_body(steps[-2], steps[-2].body | steps[-1])]
    else:
        steps.append(sig)


def _with_body(sig: chord, body: Signature) -> chord:
    extended = sig.clone()
    extended["kwargs"]["body"] = dict(body)
    return extended


def _unrolled(sig: group) -> Signature:
    """A group of one member is that member (Celery's maybe_unroll_group)."""
    members = sig["kwargs"]["tasks"]
    return maybe_signature(members[0]) if len(members) == 1 else sig


def _flattened(members: list[Signature]):
    """Members with nested groups replaced by their own members, in order."""
    for member in members:
        if isinstance(member, group):
            yield from _flattened(member.tasks)
        else:
            yield member


def _lone_chain_ending_in_group(sig: group) -> chain | None:
    """`group(a | group(b, c))`: Celery gives that inner group's result, not a list holding it."""
    members = sig["kwargs"]["tasks"]
    only = maybe_signature(members[0]) if len(members) == 1 else None
    steps = only._prepared() if isinstance(only, chain) else None
    return only if steps and isinstance(only, chain) and isinstance(steps[-1], group) else None


def _completable(sig: Signature) -> Signature:
    """A group cannot carry completion marks: it completes through a collecting task."""
    return chord(sig, Signature("taskqueue.collect")) if isinstance(sig, group) else sig
