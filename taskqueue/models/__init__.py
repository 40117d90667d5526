"""taskqueue's Django models: task, group and chord results; dead letters; the database broker."""

from .queue import BrokerConsumer, CancelledTask, DeadLetter, QueuedMessage, TaskLock
from .results import ChordCounter, GroupResult, TaskResult
from .schedules import CrontabSchedule, IntervalSchedule, PeriodicRun, PeriodicTask

__all__ = ["BrokerConsumer", "CancelledTask", "ChordCounter", "CrontabSchedule", "DeadLetter", "GroupResult",
           "IntervalSchedule", "PeriodicRun", "PeriodicTask", "QueuedMessage", "TaskLock", "TaskResult"]
