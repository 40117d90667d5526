"""The worker runtime: a supervisor process and the consumers that run tasks."""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChildLimits:
    """When a consumer process ends itself, after the batch it is running, to be replaced by a
    fresh one: after `max_tasks` tasks, or once its resident memory passes `max_memory_kib`."""

    max_tasks: int | None = None
    max_memory_kib: int | None = None


@dataclass
class WorkerConfig:
    """How a worker runs, from the runworker command line."""

    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    queues: list[str] = field(default_factory=list)
    pool: str = "prefork"
    max_tasks_per_child: int | None = None
    max_memory_per_child: int | None = None  # KiB, as Celery's --max-memory-per-child
    hostname: str = field(default_factory=lambda: f"taskqueue@{socket.gethostname()}")
    prefetch: int = 32
    beat: bool = False

    @property
    def consumers(self) -> int:
        """How many consumers run: one per task at once, but the asyncio pool's one runs them all."""
        return 1 if self.pool == "asyncio" else self.concurrency

    @property
    def child_limits(self) -> ChildLimits:
        return ChildLimits(self.max_tasks_per_child, self.max_memory_per_child)


def die_with_parent() -> None:
    """Linux: a consumer whose supervisor is SIGKILLed dies too, instead of running unsupervised."""
    import ctypes  # here: the keeper imports this package and stays lean

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
