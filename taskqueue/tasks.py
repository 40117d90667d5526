"""Built-in tasks behind map, starmap, chunks and nested groups (found by autodiscovery)."""

from __future__ import annotations

from typing import Any

from .canvas import maybe_signature
from .task import task


@task(name="taskqueue.map")
def xmap(task: dict, it: list) -> list:
    """Call `task` on each item, in this worker, in order."""
    sig = maybe_signature(task)
    return [sig.type(*sig.args, item, **sig.kwargs) for item in it]


@task(name="taskqueue.starmap")
def xstarmap(task: dict, it: list) -> list:
    """Call `task(*item)` for each item, in this worker, in order."""
    sig = maybe_signature(task)
    return [sig.type(*sig.args, *item, **sig.kwargs) for item in it]


@task(name="taskqueue.collect")
def collect(results: list) -> Any:
    """The results of a nested group, as one value for the enclosing group or chord."""
    return results
