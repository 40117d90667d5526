"""taskqueue's Django models: task, group and chord results; dead letters."""

from .queue import DeadLetter
from .results import ChordCounter, GroupResult, TaskResult

__all__ = ["ChordCounter", "DeadLetter", "GroupResult", "TaskResult"]
