"""taskqueue's Django models: task, group and chord results; dead letters; the database broker."""

from .queue import BrokerConsumer, CancelledTask, DeadLetter, OutboxMessage, QueuedMessage, RateLimit, TaskLock
from .results import ChordCounter, Dashboard, GroupResult, TaskResult
from .schedules import CrontabSchedule, IntervalSchedule, PeriodicRun, PeriodicTask

__all__ = ["BrokerConsumer", "CancelledTask", "ChordCounter", "CrontabSchedule", "Dashboard", "DeadLetter",
           "GroupResult", "IntervalSchedule", "OutboxMessage",
           "PeriodicRun", "PeriodicTask", "QueuedMessage", "RateLimit", "TaskLock", "TaskResult"]
