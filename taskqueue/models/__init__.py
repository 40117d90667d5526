"""taskqueue's Django models: results, dead letters."""

from .queue import DeadLetter
from .results import TaskResult

__all__ = ["DeadLetter", "TaskResult"]
