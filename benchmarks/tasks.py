"""taskqueue's benchmark tasks (the same three every peer defines in benchmarks/peers/)."""

from __future__ import annotations

import asyncio
import time

from taskqueue import task


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def tsum(numbers: list[int]) -> int:
    return sum(numbers)


@task
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task
async def nap(seconds: float) -> float:
    """`python -m benchmarks awaits`: a task waiting on I/O, on the asyncio pool."""
    await asyncio.sleep(seconds)
    return seconds
