"""taskqueue's Django models: task, group and chord results; dead letters; the database broker."""

from .queue import BrokerConsumer, CancelledTask, DeadLetter, OutboxMessage, QueuedMessage, RateLimit, TaskLock
from .results import ChordCounter, GroupResult, TaskResult
from .schedules import CrontabSchedule, IntervalSchedule, PeriodicRun, PeriodicTask
from .workflows import FailedCall, Workflow

__all__ = ["BrokerConsumer", "CancelledTask", "ChordCounter", "CrontabSchedule", "DeadLetter", "FailedCall",
           "GroupResult", "IntervalSchedule", "OutboxMessage",
           "PeriodicRun", "PeriodicTask", "QueuedMessage", "RateLimit", "TaskLock", "TaskResult", "Workflow"]
