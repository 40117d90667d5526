"""Tasks of the demo: the seeds' first examples."""

import time

from taskqueue import get_task_logger, task

logger = get_task_logger(__name__)


@task
def add(x, y):
    return x + y


@task
def tsum(numbers):
    return sum(numbers)


@task(bind=True)
def hello(self, a, b):
    """The progress example of the seeds: three steps reported through update_state."""
    for progress in (50, 90):
        time.sleep(1)
        self.update_state(state="PROGRESS", meta={"progress": progress})
    time.sleep(1)
    logger.info("done")
    return f"hello world: {a + b}"
