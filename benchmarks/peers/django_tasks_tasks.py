"""The django-tasks-db peers' tasks: `add`, `slow` (the mixed load), as Django tasks (`django.tasks`).

Django's tasks framework has no chord or chain, so there is no `tsum`.
"""

from __future__ import annotations

import time

from django.tasks import task


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
