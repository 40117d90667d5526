"""Priorities (0-9, higher first) on both brokers, and no starvation: a low priority still runs
under a steady flow of high ones (TASKQUEUE_PRIORITY_AGING)."""

import time

import pytest

from taskqueue.brokers import get_broker
from tests.models import Run
from tests.tasks import record


def test_higher_priorities_run_first(taskqueue_worker):
    sent = [record.apply_async((f"p{priority}-{i}",), queue="prio", priority=priority)
            for i in range(2) for priority in (0, 9, 5)]
    taskqueue_worker("-c", "1", "-Q", "prio")  # started after: it finds all six waiting
    for result in sent:
        result.get(timeout=20)
    order = list(Run.objects.filter(label__startswith="p").order_by("started").values_list("label", flat=True))
    if get_broker().reads_by_key:
        assert order == ["p9-0", "p9-1", "p5-0", "p5-1", "p0-0", "p0-1"]
    else:  # RabbitMQ: a batch handed back (a task thought long) goes to the back of its band
        assert [label.split("-")[0] for label in order] == ["p9", "p9", "p5", "p5", "p0", "p0"]


def test_a_low_priority_runs_under_a_steady_flow_of_high_ones(taskqueue_worker, settings):
    if not get_broker().reads_by_key:
        pytest.skip("RabbitMQ has priority bands, not aging (docs/brokers.md)")
    settings.TASKQUEUE_PRIORITY_AGING = 0.02  # priority 9 is 0.18 s ahead of priority 0
    taskqueue_worker("-c", "1", "-Q", "flood")
    highs, low = [], None
    deadline = time.monotonic() + 30
    # High-priority tasks of 20 ms arrive about twice as fast as the worker runs them, so high ones
    # always wait; the low one must still run while they keep coming.
    while time.monotonic() < deadline and not (low is not None and low.ready()):
        highs.append(record.apply_async(("high", 0.02), queue="flood", priority=9))
        if len(highs) == 20:
            low = record.apply_async(("low",), queue="flood", priority=0)
        time.sleep(0.01)  # the pace of the flow
    assert low is not None and low.ready(), "the low-priority task never ran under the flow"
    assert sum(not result.ready() for result in highs) > 0  # high ones were still waiting
    assert low.get(timeout=5)
