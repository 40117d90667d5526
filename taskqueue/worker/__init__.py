"""The worker runtime: a supervisor process and the consumers that run tasks."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field


@dataclass
class WorkerConfig:
    """How a worker runs, from the runworker command line."""

    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    queues: list[str] = field(default_factory=list)
    pool: str = "prefork"
    max_tasks_per_child: int | None = None
    hostname: str = field(default_factory=lambda: f"taskqueue@{socket.gethostname()}")
    prefetch: int = 32
    beat: bool = False
