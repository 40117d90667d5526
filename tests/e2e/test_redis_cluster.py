"""A real worker on a Redis Cluster (redis+cluster://): a drain over two queues, a chord, get()."""

from __future__ import annotations

import pytest

from taskqueue import chord, states
from taskqueue.brokers import reset_broker
from taskqueue.models import TaskResult
from tests.helpers import wait_until
from tests.tasks import add, tsum

pytestmark = [pytest.mark.slow, pytest.mark.any_broker]  # its own cluster, whatever the run's broker

DRAIN = 300


@pytest.fixture
def cluster_worker(redis_cluster, taskqueue_worker, settings):
    """A prefork worker on the cluster, on the default queue and a second one; this process sends there."""
    settings.TASKQUEUE_BROKER_URL = redis_cluster.url
    reset_broker()
    worker = taskqueue_worker("-c", "2", "-Q", "default,cluster-b", "--hostname", "cluster@tests",
                              env={"TASKQUEUE_TEST_REDIS_URL": redis_cluster.url, "TASKQUEUE_TEST_BROKER": "redis"})
    yield worker
    reset_broker()


def test_a_worker_on_a_cluster_drains_two_queues_runs_a_chord_and_wakes_get(cluster_worker, redis_cluster):
    assert redis_cluster.url.split("@")[-1] in cluster_worker.output  # the banner names the cluster
    assert "supervisor:   this process" in cluster_worker.output  # the lean one speaks to one server only
    results = [add.apply_async((i, i), queue="default" if i % 2 else "cluster-b") for i in range(DRAIN)]
    assert results[-1].get(timeout=30) == 2 * (DRAIN - 1)  # woken by the outcome notification
    wait_until(lambda: TaskResult.objects.filter(state=states.SUCCESS).count() == DRAIN, timeout=60,
               message="every task stored")
    assert set(TaskResult.objects.values_list("queue", flat=True)) == {"cluster-b", "default"}
    assert [r.get(timeout=10) for r in results[:5]] == [0, 2, 4, 6, 8]
    assert chord((add.s(i, i) for i in range(10)), tsum.s())().get(timeout=30) == 90
