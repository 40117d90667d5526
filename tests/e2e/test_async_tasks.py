"""`async def` tasks: run on the worker's event loop with retries, the soft time limit and results;
`adelay` and `aget` for async code."""

import asyncio

import pytest

from taskqueue import chain
from taskqueue.exceptions import SoftTimeLimitExceeded
from tests.helpers import wait_until
from tests.models import Run
from tests.tasks import add, async_add, async_sleep

pytestmark = [pytest.mark.any_broker, pytest.mark.any_database]  # running a coroutine depends on neither


def test_an_async_task_runs_with_its_retries(mode):
    result = async_add.delay(2, 3, fail_times=2)
    assert result.get(timeout=15) == 5
    assert result.retries == 2


def test_an_async_task_in_a_chain(mode):
    assert chain(async_add.s(1, 2), add.s(10), async_add.s(100))().get(timeout=15) == 113


def test_the_soft_time_limit_cancels_an_async_task(worker):
    result = async_sleep.delay("soft", 30)
    with pytest.raises(SoftTimeLimitExceeded):
        result.get(timeout=15)
    wait_until(lambda: Run.objects.filter(label="soft-cleaned-up").exists(), timeout=5,
               message="the task's own clean-up ran")


def test_adelay_and_aget_from_async_code(worker):
    async def view():
        result = await async_add.adelay(20, 22)
        return await result.aget(timeout=15)

    assert asyncio.run(view()) == 42


def test_calling_an_async_task_directly_returns_its_coroutine():
    coroutine = async_add(1, 1)
    assert asyncio.iscoroutine(coroutine)
    coroutine.close()
