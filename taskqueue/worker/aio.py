"""`async def` tasks: the coroutine a task returns is run to its end on this process's event loop.

The loop is made once per process (each prefork child has its own) and kept across tasks, so
clients bound to it (an httpx.AsyncClient made at module level, say) stay usable. The soft time
limit reaches an async task as a cancellation: the task sees `asyncio.CancelledError` where it
awaits (and may clean up), the caller gets SoftTimeLimitExceeded. An eager run from inside a
running event loop (an async view, with eager mode on) runs the coroutine on a loop of its own in
another thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

_loops = threading.local()


def run(coroutine: Coroutine[Any, Any, Any], soft_time_limit: float | None = None) -> Any:
    """The value of `coroutine`, awaited on this thread's loop (made on first use)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return loop().run_until_complete(limited(coroutine, soft_time_limit))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskqueue-async") as pool:
        return pool.submit(asyncio.run, limited(coroutine, soft_time_limit)).result()


def loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop, made on first use and kept."""
    current = getattr(_loops, "loop", None)
    if current is None or current.is_closed():
        current = _loops.loop = asyncio.new_event_loop()
    return current


async def limited(coroutine: Coroutine[Any, Any, Any], soft_time_limit: float | None,
                  time_limit: float | None = None) -> Any:
    """Await `coroutine`, cancelled at the first of its limits: SoftTimeLimitExceeded at the soft
    one, TimeLimitExceeded at the hard one (given only in the asyncio pool: elsewhere the
    supervisor kills the process at the hard limit)."""
    error: Exception
    if soft_time_limit and (not time_limit or soft_time_limit <= time_limit):
        seconds, error = soft_time_limit, SoftTimeLimitExceeded(f"soft time limit ({soft_time_limit} s) exceeded")
    elif time_limit:
        seconds, error = time_limit, TimeLimitExceeded(f"hard time limit ({time_limit} s) exceeded")
    else:
        return await coroutine
    try:
        async with asyncio.timeout(seconds):
            return await coroutine
    except TimeoutError:
        raise error from None
