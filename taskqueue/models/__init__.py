"""taskqueue's Django models: task, group and chord results; dead letters; the database broker;
paused queues and worker records (operators' controls)."""

from .operations import PausedQueue, Queue, WorkerRecord
from .queue import BrokerConsumer, CancelledTask, DeadLetter, OutboxMessage, QueuedMessage, RateLimit, TaskLock
from .results import ChordCounter, ChordFailedMember, ChordPlan, Dashboard, GroupResult, TaskResult
from .schedules import CrontabSchedule, IntervalSchedule, PeriodicRun, PeriodicTask
from .workflows import FailedCall, Workflow

__all__ = ["BrokerConsumer", "CancelledTask", "ChordCounter", "ChordFailedMember", "ChordPlan", "CrontabSchedule",
           "Dashboard", "DeadLetter", "FailedCall", "GroupResult", "IntervalSchedule", "OutboxMessage", "PausedQueue",
           "PeriodicRun", "PeriodicTask", "Queue", "QueuedMessage", "RateLimit", "TaskLock", "TaskResult",
           "Workflow", "WorkerRecord"]
