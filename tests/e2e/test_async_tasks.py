"""`async def` tasks: run on the worker's event loop with retries, the soft time limit and results;
`adelay` and `aget` for async code."""

import asyncio

import pytest

from taskqueue import chain, group, states
from taskqueue.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from taskqueue.testing import start_worker
from tests.helpers import wait_until
from tests.models import Run
from tests.tasks import add, async_add, async_nap, async_sleep

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


# -- the asyncio pool: one child, many tasks at once on its loop ---------------------------------

@pytest.fixture
def asyncio_worker(transactional_db, broker_url):
    worker = start_worker("-P", "asyncio", "-c", "100", "-Q", "aio", "--hostname", "aio@tests")
    yield worker
    worker.terminate()


def test_a_hundred_async_tasks_run_at_once_in_one_child(asyncio_worker):
    results = group(async_nap.s(2) for _ in range(100)).apply_async(queue="aio")
    naps = results.get(timeout=60)
    assert len({pid for pid, _, _ in naps}) == 1  # one process ran them all
    # at once: every one had started before any finished (one after another would take 200 s)
    assert max(started for _, started, _ in naps) < min(finished for _, _, finished in naps)


def test_the_asyncio_pool_keeps_retries_limits_and_sync_tasks(asyncio_worker):
    retried = async_add.apply_async((2, 3), {"fail_times": 2}, queue="aio")
    soft = async_sleep.apply_async(("aio-soft", 30), queue="aio")
    hard = async_nap.apply_async((30,), queue="aio", time_limit=0.5)
    synchronous = add.apply_async((4, 5), queue="aio")
    chained = chain(async_add.s(1, 2), add.s(10), async_add.s(100)).apply_async(queue="aio")
    assert retried.get(timeout=15) == 5 and retried.retries == 2
    with pytest.raises(SoftTimeLimitExceeded):
        soft.get(timeout=15)
    wait_until(lambda: Run.objects.filter(label="aio-soft-cleaned-up").exists(), timeout=5,
               message="the task's own clean-up ran")
    with pytest.raises(TimeLimitExceeded):
        hard.get(timeout=15)
    assert synchronous.get(timeout=15) == 9
    assert chained.get(timeout=15) == 113


def test_revoke_with_terminate_cancels_one_task_and_spares_the_rest(asyncio_worker):
    doomed = async_sleep.apply_async(("aio-doomed", 30), queue="aio", soft_time_limit=60)
    spared = async_nap.apply_async((3,), queue="aio")
    wait_until(lambda: doomed.state == states.STARTED, timeout=10, message="started")
    doomed.revoke(terminate=True)
    # its coroutine was cancelled where it awaited: its own clean-up ran
    wait_until(lambda: Run.objects.filter(label="aio-doomed-cleaned-up").exists(), timeout=10,
               message="cancelled")
    assert asyncio_worker.wait_for_output(f"Task {doomed.id} revoked with terminate (SIGTERM): cancelling it")
    after = async_nap.apply_async((0,), queue="aio")
    assert spared.get(timeout=15)[0] == after.get(timeout=15)[0]  # the process was not killed for it
    assert doomed.state == states.REVOKED
