"""Signature: a task name with partial arguments and options, as a dict that round-trips through
JSON; freezing fixes its id, applying sends it through `producer`. The one-message kinds (map,
starmap) and chunks are here; chain, group and chord are in `canvas`. Every kind registers its
`subtask_type` here, so a dict that travelled as JSON becomes the right class again
(`maybe_signature`).
"""

from __future__ import annotations

import itertools
import types
from typing import TYPE_CHECKING, Any, Self

from . import registry
from .producer import send
from .result import AsyncResult, GroupResult
from .utils import new_id

if TYPE_CHECKING:
    from .canvas import group as _group

MARKS = ("group_id", "group_index", "chord")
_LINEAGE = ("parent_id", "root_id")
FREEZE_OPTIONS = (*MARKS, *_LINEAGE)  # apply_async options that are freeze() arguments of a canvas


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


_KINDS: dict[str | None, type[Signature]] = {}  # subtask_type -> class, filled as `canvas` defines them


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

    def clone(self, args: tuple | None = None, kwargs: dict | None = None, **options: Any) -> Self:
        """A deep copy; new args go in front of the partial ones (unless immutable), kwargs/options win."""
        sig = maybe_signature(_copied(self))
        if args and not sig.immutable:
            sig["args"] = list(args) + sig["args"]
        if kwargs and not sig.immutable:
            sig["kwargs"].update(kwargs)
        sig["options"].update(options)
        return sig

    def set(self, immutable: bool | None = None, **options: Any) -> Self:
        if immutable is not None:
            self.set_immutable(immutable)
        self["options"].update(options)
        return self

    def link(self, callback: dict) -> dict:
        """Run `callback` with this task's return value once it succeeds (once, however often linked)."""
        return self._append_option("link", callback)

    def link_error(self, errback: dict) -> dict:
        """Run `errback` when this task fails: (request, exc, traceback) or (failed task id)."""
        return self._append_option("link_error", errback)

    def _append_option(self, key: str, sig: dict) -> dict:
        items = self["options"].setdefault(key, [])
        if not isinstance(items, list):
            items = self["options"][key] = [items]
        if sig not in items:
            items.append(dict(sig))
        return sig

    def flatten_links(self) -> list[Signature]:
        """This signature followed by its links, and theirs, depth first (Celery's "unchain with
        links intact")."""
        flat: list[Signature] = [self]
        for callback in self["options"].get("link") or []:
            flat.extend(maybe_signature(callback).flatten_links())
        return flat

    def _linked(self, options: dict) -> Self:
        """This signature with the link and link_error taken out of apply_async's options."""
        for callback in callbacks(options.pop("link", None)):
            self.link(callback)
        for errback in callbacks(options.pop("link_error", None)):
            self.link_error(errback)
        return self

    def on_error(self, errback: dict) -> Self:
        self.link_error(errback)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = bool(immutable)

    def __or__(self, other: Any) -> Signature:
        if isinstance(other, dict):  # chain() unrolls a one-member group and splices a chain in
            return _KINDS["chain"](self, maybe_signature(other))
        return NotImplemented

    def __ior__(self, other: Any) -> Signature:
        # dict's in-place merge would overwrite this signature's keys: `c |= task` appends instead
        return self.__or__(other)

    def reprcall(self, *args: Any, **kwargs: Any) -> str:
        """`add(2, 2)`: how Celery shows a signature (with these arguments merged in)."""
        call_args, call_kwargs = (self.args, self.kwargs) if not (args or kwargs) else self._call_args(args, kwargs)
        return reprcall(self["task"], call_args, call_kwargs)

    def __repr__(self) -> str:
        return self.reprcall()

    def __invert__(self) -> Any:
        return self.apply_async().get()

    # -- freezing and sending ------------------------------------------------------------------

    def freeze(self, _id: str | None = None, group_id: str | None = None, chord: dict | None = None,
               root_id: str | None = None, parent_id: str | None = None,
               group_index: int | None = None) -> AsyncResult:
        """Fix this task's id now (an id it already has is kept, as is its group) and stamp the
        lineage and completion marks given; returns its result."""
        options = self["options"]
        task_id = options.get("task_id")
        if not task_id:
            task_id = options["task_id"] = _id or new_id()
        if root_id:
            options["root_id"] = root_id
        if parent_id:
            options["parent_id"] = parent_id
        if group_id and not options.get("group_id"):
            options["group_id"] = group_id
        if chord:
            options["chord"] = chord
        if group_index is not None:
            options["group_index"] = group_index
        return AsyncResult(task_id, task_name=self["task"])

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


# -- the leaf kinds: one message each (chunks is a group of them) ---------------------------------

class chunks(Signature, kind="chunks"):  # noqa: N801 - Celery's name
    """Split `items` into chunks of `n` calls of `task`; each chunk runs as one immutable message,
    the last one shorter."""

    def __init__(self, task: Any, it: Any = None, n: Any = None, **options: Any):
        if type(task) is dict and task.get("subtask_type") == "chunks":
            Signature.__init__(self, task)
            return
        items = [list(item) if not isinstance(item, dict) else item for item in _materialise(it)]
        Signature.__init__(self, "taskqueue.chunks", (),
                           {"task": dict(maybe_signature(task)), "it": items, "n": int(n)}, options,
                           subtask_type="chunks", immutable=True)

    def group(self) -> _group:
        task, items, n = self["kwargs"]["task"], self["kwargs"]["it"], self["kwargs"]["n"]
        return _KINDS["group"](  # type: ignore[return-value]  # canvas.group
            xstarmap(task, items[i:i + n]) for i in range(0, len(items), n))

    # Celery's canvas: a group's call gives a GroupResult, a task signature's an AsyncResult.
    def apply_async(  # type: ignore[override]
            self, args: tuple | list = (), kwargs: dict | None = None, **options: Any) -> GroupResult:
        return self.group().apply_async(args, kwargs, **{**self.options, **options})

    def __call__(self, **options: Any) -> GroupResult:
        return self.apply_async(**options)


def xmap(task: Any, it: Any) -> Signature:
    """One message calling `task(item)` for each item, in order (immutable, as in Celery)."""
    return Signature("taskqueue.map", (), {"task": dict(maybe_signature(task)), "it": _materialise(it)},
                     immutable=True)


def xstarmap(task: Any, it: Any) -> Signature:
    """One message calling `task(*item)` for each item, in order (immutable, as in Celery)."""
    items = [list(item) for item in _materialise(it)]
    return Signature("taskqueue.starmap", (), {"task": dict(maybe_signature(task)), "it": items}, immutable=True)


def _materialise(items: Any) -> list:
    """Lists for ranges, generators, zips and maps, so they can travel as JSON."""
    if isinstance(items, (range, types.GeneratorType, zip, map, filter, itertools.islice)):
        items = list(items)
    return [list(item) if isinstance(item, (range, types.GeneratorType)) else item for item in items]


# -- helpers of the canvas ------------------------------------------------------------------------

def reprcall(name: str, args: Any = (), kwargs: dict | None = None) -> str:
    """`name(1, 2, x=3)`, as Celery shows a signature."""
    shown = [repr(arg) for arg in args or ()] + [f"{key}={value!r}" for key, value in (kwargs or {}).items()]
    return f"{name}({', '.join(shown)})"


def shorter_repr(task_name: str, text: str) -> str:
    """Celery's repr of a canvas: the first task's module is not repeated for the later tasks."""
    module = task_name.rpartition(".")[0] + "."
    index = text.find(module)
    if module == "." or index < 0:
        return text
    cut = index + len(module)
    return text[:cut] + text[cut:].replace(module, "")


def callbacks(value: Any) -> list:
    """A link or link_error option as a list."""
    if not value:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def fxrange(start: float, stop: float | None, step: float):
    """start, start + step, ... while not over `stop`, then the last one again (Celery's skew)."""
    current = float(start)
    while True:
        if not stop or current <= stop:
            yield current
            current += step
        else:
            yield current - step


def freeze_args(options: dict) -> dict:
    """Take the lineage and completion marks out of apply_async's options: they are freeze()'s."""
    return {key: options.pop(key) for key in FREEZE_OPTIONS if key in options}


def set_deepest_parent(result, parent) -> None:
    """Hang `parent` above the first node of `result`'s own lineage (a chord body's chain, say)."""
    node = result
    seen = 0
    while getattr(node, "_parent", None) is not None and seen < 10_000:
        node = node._parent
        seen += 1
    if node is not parent:
        node.parent = parent
