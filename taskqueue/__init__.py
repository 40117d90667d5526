"""taskqueue: a distributed task queue for Django, in the style of Celery."""

from __future__ import annotations

from . import signals, states
from .app import Celery, TaskQueue, app, send_task
from .canvas import Signature, chain, chord, chunks, group, maybe_signature, signature, xmap, xstarmap
from .log import get_task_logger
from .result import AsyncResult, EagerResult, GroupResult, result_from_tuple
from .task import Task, shared_task, task

__version__ = "0.1.0"

__all__ = ["AsyncResult", "Celery", "EagerResult", "GroupResult", "Signature", "Task", "TaskQueue", "app", "chain",
           "chord", "chunks", "get_task_logger", "group", "maybe_signature", "result_from_tuple", "send_task",
           "shared_task", "signals", "signature", "states", "task", "xmap", "xstarmap"]

