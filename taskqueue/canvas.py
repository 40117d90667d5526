"""Signatures: a task call as a JSON-friendly dict that can be sent later or linked as a callback."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from .utils import new_id

if TYPE_CHECKING:
    from .result import AsyncResult


class Signature(dict):
    """A task name with partial args, kwargs and options; `dict(sig)` round-trips through JSON."""

    def __init__(self, task: Any = None, args: tuple | list | None = None, kwargs: dict | None = None,
                 options: dict | None = None, subtask_type: str | None = None, immutable: bool = False,
                 **extra_options: Any):
        if isinstance(task, dict):  # rebuilding from a dict (e.g. after JSON)
            super().__init__(copy.deepcopy(task))
            self.setdefault("args", [])
            self.setdefault("kwargs", {})
            self.setdefault("options", {})
            self.setdefault("subtask_type", None)
            self.setdefault("immutable", False)
            return
        name = getattr(task, "name", task)
        super().__init__(task=name, args=list(args or ()), kwargs=dict(kwargs or {}),
                         options={**(options or {}), **extra_options}, subtask_type=subtask_type,
                         immutable=bool(immutable))

    name = property(lambda self: self["task"])
    task = property(lambda self: self["task"])
    args = property(lambda self: tuple(self["args"]))
    kwargs = property(lambda self: self["kwargs"])
    options = property(lambda self: self["options"])
    immutable = property(lambda self: self["immutable"])
    id = property(lambda self: self["options"].get("task_id"))

    @property
    def type(self):
        from .registry import get_task

        return get_task(self["task"])

    def _merged(self, args: tuple = (), kwargs: dict | None = None, options: dict | None = None):
        if self.immutable:
            return self.args, dict(self.kwargs), {**self.options, **(options or {})}
        return (tuple(args) + self.args, {**self.kwargs, **(kwargs or {})}, {**self.options, **(options or {})})

    def apply_async(self, args: tuple | list = (), kwargs: dict | None = None, **options: Any) -> AsyncResult:
        """Send the call; partial args are appended after `args`, new kwargs and options win."""
        from .producer import send

        full_args, full_kwargs, full_options = self._merged(tuple(args or ()), kwargs, options)
        task = _registered_or_none(self["task"])
        if task is not None:
            task.check_arguments(full_args, full_kwargs)
        return send(self["task"], full_args, full_kwargs, task=task, **full_options)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return self.apply_async(args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        full_args, full_kwargs, _ = self._merged(args, kwargs)
        return self.type(*full_args, **full_kwargs)

    def apply(self, args: tuple = (), kwargs: dict | None = None, **options: Any) -> AsyncResult:
        full_args, full_kwargs, full_options = self._merged(tuple(args), kwargs, options)
        return self.type.apply(full_args, full_kwargs, **full_options)

    def clone(self, args: tuple | None = None, kwargs: dict | None = None, **options: Any) -> Signature:
        sig = Signature(dict(copy.deepcopy(dict(self))))
        if args:
            sig["args"] = list(args) + list(sig["args"]) if not sig.immutable else sig["args"]
        if kwargs:
            sig["kwargs"].update(kwargs)
        sig["options"].update(options)
        return sig

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        if immutable is not None:
            self["immutable"] = immutable
        self["options"].update(options)
        return self

    def freeze(self, _id: str | None = None) -> AsyncResult:
        from .result import AsyncResult

        task_id = self["options"].setdefault("task_id", _id or new_id())
        return AsyncResult(task_id, task_name=self["task"])

    def link(self, callback: dict) -> dict:
        self["options"].setdefault("link", []).append(dict(callback))
        return callback

    def link_error(self, errback: dict) -> dict:
        self["options"].setdefault("link_error", []).append(dict(errback))
        return errback

    on_error = link_error


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """Build a Signature from a task name, a Task or a dict (e.g. one that came through JSON)."""
    if isinstance(varies, Signature) and not args and not kwargs:
        return varies
    if isinstance(varies, dict):
        return Signature(varies)
    return Signature(varies, *args, **kwargs)


maybe_signature = signature


def _registered_or_none(name: str):
    from .registry import get_task, is_registered

    return get_task(name) if is_registered(name) else None
