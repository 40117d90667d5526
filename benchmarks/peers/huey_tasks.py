"""The benchmark's Huey tasks, `add`, `tsum` and `slow`, defined on a given Huey instance.

Huey binds a task to the instance whose `@huey.task()` made it, so the Redis app
(`benchmarks.peers.huey_app`) and the database one (`benchmarks.peers.huey_db_app`) each call
`define_tasks` on their own instance. Huey registers a task under its function's module and name;
`define_tasks` gives the functions the calling app's module, so each registers its tasks under its
own name (``benchmarks.peers.huey_app.add``, ``benchmarks.peers.huey_db_app.add``), as when each
app wrote them out.
"""

from __future__ import annotations

import time
from typing import Any


def define_tasks(huey: Any, module: str) -> tuple[Any, Any, Any]:
    """Define `add`, `tsum` and `slow` on `huey`, registered as module `module`'s; return them."""

    def add(x: int, y: int) -> int:
        return x + y

    def tsum(numbers: list[int]) -> int:
        return sum(numbers)

    def slow(seconds: float) -> float:
        """The mixed load's long task. Returns a value: Huey stores no result for None (store_none=False)."""
        time.sleep(seconds)
        return seconds

    tasks = []
    for func in (add, tsum, slow):
        func.__module__, func.__qualname__ = module, func.__name__
        tasks.append(huey.task()(func))
    return tuple(tasks)
