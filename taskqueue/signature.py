"""Signature: a task name with partial arguments and options, as a dict that round-trips through
JSON; freezing fixes its id, applying sends it through `producer`. The primitives built from it
(chain, group, chord, chunks) are in `canvas` and register their `subtask_type` here, so a dict
that travelled as JSON becomes the right class again (`maybe_signature`).
"""

from __future__ import annotations

from typing import Any

from . import registry
from .producer import send
from .result import AsyncResult
from .utils import new_id

MARKS = ("group_id", "group_index", "chord")
_LINEAGE = ("parent_id", "root_id")


def _copied(value: Any) -> Any:
    """A copy of signature data all the way down: dicts (signatures become plain dicts), lists and
    tuples are copied, anything else is shared (what a message can carry is immutable, or rebuilt
    on the other side). copy.deepcopy spent most of a 1,000-member chord's apply_async."""
    kind = type(value)
    if kind is list:
        return [_copied(item) for item in value]
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if kind is tuple:
        return tuple(_copied(item) for item in value)
    return value


_KINDS: dict[str, type[Signature]] = {}  # subtask_type -> class, filled as `canvas` defines them


class Signature(dict):
    """A task name with partial args, kwargs and options; `dict(sig)` round-trips through JSON."""

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if kind is not None:
            _KINDS[kind] = cls

    def __init__(self, task: Any = None, args: tuple | list | None = None, kwargs: dict | None = None,
                 options: dict | None = None, subtask_type: str | None = None, immutable: bool = False,
                 **extra_options: Any):
        if isinstance(task, dict):  # rebuilding from a dict (e.g. after JSON)
            super().__init__(_copied(task))
            for key, default in (("args", []), ("kwargs", {}), ("options", {}), ("subtask_type", None),
                                 ("immutable", False)):
                self.setdefault(key, default)
            self["args"] = list(self["args"])
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
    subtask_type = property(lambda self: self["subtask_type"])
    id = property(lambda self: self["options"].get("task_id"))

    @property
    def type(self):
        return registry.get_task(self["task"])

    # -- building ------------------------------------------------------------------------------

    def clone(self, args: tuple | None = None, kwargs: dict | None = None, **options: Any) -> Signature:
        """A deep copy; new args go in front of the partial ones (unless immutable), kwargs/options win."""
        sig = maybe_signature(_copied(self))
        if args and not sig.immutable:
            sig["args"] = list(args) + sig["args"]
        if kwargs and not sig.immutable:
            sig["kwargs"].update(kwargs)
        sig["options"].update(options)
        return sig

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        if immutable is not None:
            self["immutable"] = immutable
        self["options"].update(options)
        return self

    def link(self, callback: dict) -> dict:
        """Run `callback` with this task's return value once it succeeds."""
        self["options"].setdefault("link", []).append(dict(callback))
        return callback

    def link_error(self, errback: dict) -> dict:
        """Run `errback` when this task fails: (request, exc, traceback) or (failed task id)."""
        self["options"].setdefault("link_error", []).append(dict(errback))
        return errback

    def on_error(self, errback: dict) -> Signature:
        self.link_error(errback)
        return self

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, dict):
            return _KINDS["chain"](self, maybe_signature(other))
        return NotImplemented

    def __invert__(self) -> Any:
        return self.apply_async().get()

    # -- freezing and sending ------------------------------------------------------------------

    def freeze(self, _id: str | None = None, **marks: Any) -> AsyncResult:
        """Fix this task's id (and completion marks) now; returns its result."""
        options = self["options"]
        options.setdefault("task_id", _id or new_id())
        options.update({key: value for key, value in marks.items() if value is not None})
        return AsyncResult(options["task_id"], task_name=self["task"])

    def _send_options(self, options: dict) -> dict:
        merged = {**self["options"], **options}
        return {key: value for key, value in merged.items() if value is not None or key not in MARKS}

    def apply_async(self, args: tuple | list = (), kwargs: dict | None = None, **options: Any) -> AsyncResult:
        """Send the call; `args` go in front of the partial ones, new kwargs and options win."""
        call_args, call_kwargs = self._call_args(tuple(args or ()), kwargs)
        task = registry.find(self["task"])
        if task is not None:
            task.check_arguments(call_args, call_kwargs)
        return send(self["task"], call_args, call_kwargs, task=task, **self._send_options(options))

    def _call_args(self, args: tuple, kwargs: dict | None) -> tuple[tuple, dict]:
        if self.immutable:
            return self.args, dict(self.kwargs)
        return args + self.args, {**self.kwargs, **(kwargs or {})}

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return self.apply_async(args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        call_args, call_kwargs = self._call_args(args, kwargs)
        return self.type(*call_args, **call_kwargs)

    def apply(self, args: tuple = (), kwargs: dict | None = None, **options: Any) -> AsyncResult:
        call_args, call_kwargs = self._call_args(tuple(args), kwargs)
        return self.type.apply(call_args, call_kwargs, **{**self["options"], **options})


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """Build a Signature from a task name, a Task or a dict (e.g. one that came through JSON)."""
    if isinstance(varies, Signature) and not args and not kwargs:
        return varies
    if isinstance(varies, dict):
        return maybe_signature(varies)
    return Signature(varies, *args, **kwargs)


def maybe_signature(value: Any) -> Any:
    """The right canvas class for a signature dict (chain, group, chord, chunks or a task)."""
    if value is None or (isinstance(value, Signature) and type(value) is not Signature):
        return value
    if isinstance(value, dict):
        kind = _KINDS.get(value.get("subtask_type"))
        if kind is not None:
            return kind(dict(value))
        return value if type(value) is Signature else Signature(dict(value))
    if hasattr(value, "s") and hasattr(value, "name"):  # a Task: its signature with no arguments
        return value.s()
    raise TypeError(f"not a signature: {value!r}")
