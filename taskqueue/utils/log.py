"""`from taskqueue.utils.log import get_task_logger`, where Celery has it (`celery.utils.log`)."""

from ..log import get_task_logger

__all__ = ["get_task_logger"]
