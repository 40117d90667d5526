"""The one place where the layers point upwards, declared: the user-facing modules (`producer`,
`control`) need two things only the worker's code can do, an eager run and the continuation of a
revoked chord member. The worker registers them when Django's app registry is ready
(`apps.TaskqueueConfig.ready`), so nothing below imports the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Runtime:
    run_eager: Callable[..., Any]  # (message, throw=None): run it in this process; returns its EagerResult
    revoked: Callable[[list[str]], None]  # count revoked tasks for their chords, settling those


_registered: Runtime | None = None


def register(runtime: Runtime) -> None:
    global _registered
    _registered = runtime


def get() -> Runtime:
    if _registered is None:
        raise ImproperlyConfigured("taskqueue is not ready: add 'taskqueue' to INSTALLED_APPS and call "
                                   "django.setup() before running or revoking tasks")
    return _registered
