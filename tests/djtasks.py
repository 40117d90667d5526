"""Tasks written with Django's own `django.tasks.task` (Django 6+), run by taskqueue's backend.
Their workers record Django's task_started / task_finished signals as Run rows. They use queues of
their own: the session's shared worker (which does not import this module) never takes them."""

import asyncio
import os

import django
from django.dispatch import receiver

try:
    from django.tasks import task
    from django.tasks.signals import task_finished, task_started
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import task
    from django_tasks.signals import task_finished, task_started


@task(queue_name="django-tasks")
def multiply(x, y):
    return x * y


@task(queue_name="django-tasks-2")
def fail_with(message):
    raise ValueError(message)


@task(queue_name="django-tasks", takes_context=True)
def with_context(context, label):
    return {"label": label, "id": context.task_result.id, "attempt": context.attempt}


@task(queue_name="django-tasks")
async def async_multiply(x, y):
    await asyncio.sleep(0.01)
    return x * y


def _record(signal, task_result):
    from tests.models import Run

    Run.objects.create(label=f"{signal}|{task_result.task.name}|{task_result.status}"[:100],
                       task_id=task_result.id, pid=os.getpid())


@receiver(task_started)
def on_started(sender, task_result, **kwargs):
    _record("started", task_result)


@receiver(task_finished)
def on_finished(sender, task_result, **kwargs):
    _record("finished", task_result)


# Django 6.1 passes further @task options to the backend's task class; 6.0 refuses them.
_RETRIES = {"max_retries": 3, "autoretry_for": (ValueError,), "default_retry_delay": 0, "retry_jitter": False} \
    if django.VERSION >= (6, 1) else {}


@task(queue_name="django-tasks", takes_context=True, **_RETRIES)
def flaky(context, succeed_on):
    """Fails until its `succeed_on`th attempt (Django 6.1 passes the retry options to our task)."""
    if context.attempt < succeed_on:
        raise ValueError(f"attempt {context.attempt}")
    return context.attempt
