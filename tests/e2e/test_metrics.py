"""The Prometheus endpoint against a running worker: valid text, with the figures of what ran."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskqueue import control
from taskqueue.brokers import Outgoing, get_broker
from taskqueue.models import DeadLetter
from tests.factories import SignedBodyFactory, TaskResultFactory
from tests.helpers import wait_until
from tests.tasks import add, measured

TOKEN = "scrape-me"


def scrape(client) -> dict[tuple, float]:
    """Every sample of /metrics as (name, sorted labels) -> value, parsed by prometheus_client.
    Every family is a gauge: the figures are read when scraped and those of finished tasks cover a
    sliding window, so they go down; a counter or a histogram would tell Prometheus they only grow."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        assert family.type == "gauge", (family.name, family.type)
        for sample in family.samples:
            assert sample.name == family.name  # no _total, _count, _sum or _bucket of a typed family
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_of_a_running_worker(worker, client, settings):
    settings.TASKQUEUE_METRICS_TOKEN = TOKEN
    for result in [measured.delay() for _ in range(5)]:
        assert result.get(timeout=10) == "ok"
    measured.delay("fail").get(timeout=10, propagate=False)
    measured.delay("retry").get(timeout=15, propagate=False)
    get_broker().publish([Outgoing("default", "metrics-dead-1",
                                   SignedBodyFactory(message__id="metrics-dead-1", message__task="no.such.task"))])
    wait_until(lambda: DeadLetter.objects.filter(message_id="metrics-dead-1").exists(), timeout=10,
               message="the dead letter")
    for _ in range(3):
        add.apply_async((1, 1), queue="metrics-idle")  # no worker reads it
    add.apply_async((1, 1), queue="metrics-later", countdown=3600)
    TaskResultFactory(task_name="tests.tasks.slow", state="STARTED", date_done=None)
    # live from its next heartbeat: with the database broker the flush between tests drops the lease rows
    wait_until(lambda: control.workers(), timeout=5, message="the worker's lease")
    try:
        samples = scrape(client)
    finally:
        control.purge("metrics-idle")

    assert samples[("taskqueue_broker_up", ())] == 1
    assert samples[("taskqueue_queue_ready_messages", (("queue", "metrics-idle"),))] == 3
    assert samples[("taskqueue_workers_live", ())] >= 1
    assert samples[("taskqueue_worker_processes", (("worker", "shared@tests"),))] >= 2
    assert samples[("taskqueue_tasks_finished", (("state", "SUCCESS"), ("task_name", "tests.tasks.measured")))] == 5
    assert samples[("taskqueue_tasks_finished", (("state", "FAILURE"), ("task_name", "tests.tasks.measured")))] == 2
    assert samples[("taskqueue_tasks_unfinished", (("state", "STARTED"), ("task_name", "tests.tasks.slow")))] == 1
    assert samples[("taskqueue_task_retries", (("task_name", "tests.tasks.measured"),))] == 2
    assert samples[("taskqueue_dead_letters", (("queue", "default"),))] == 1
    if get_broker().reads_by_key:
        assert samples[("taskqueue_delayed_messages", (("queue", "metrics-later"),))] == 1
    else:  # RabbitMQ cannot tell: no figure rather than a false 0
        assert not any(name == "taskqueue_delayed_messages" for name, _ in samples)
    runtime = (("task_name", "tests.tasks.measured"),)
    assert samples[("taskqueue_task_runtime_buckets", (("le", "+Inf"), *runtime))] == 7
    assert samples[("taskqueue_task_runtime_buckets", (("le", "60.0"), *runtime))] == 7
    assert samples[("taskqueue_task_runtime_buckets", (("le", "0.005"), *runtime))] <= 7
    assert 0 <= samples[("taskqueue_task_busy_seconds", runtime)] < 7


@pytest.mark.any_broker
def test_finished_task_figures_go_down_as_the_window_slides(client, db, settings):
    """Why they are gauges: a task leaves the figures when it is older than the window."""
    from datetime import timedelta

    from django.utils import timezone

    settings.TASKQUEUE_METRICS_TOKEN = TOKEN
    settings.TASKQUEUE_METRICS_WINDOW = 300
    row = TaskResultFactory(task_name="tests.tasks.add", state="SUCCESS", date_done=timezone.now())
    labels = (("state", "SUCCESS"), ("task_name", "tests.tasks.add"))
    assert scrape(client)[("taskqueue_tasks_finished", labels)] == 1
    assert scrape(client)[("taskqueue_task_runtime_buckets", (("le", "+Inf"), ("task_name", "tests.tasks.add")))] == 1
    type(row).objects.filter(pk=row.pk).update(date_done=timezone.now() - timedelta(seconds=301))
    later = scrape(client)
    assert ("taskqueue_tasks_finished", labels) not in later
    assert ("taskqueue_task_runtime_buckets", (("le", "+Inf"), ("task_name", "tests.tasks.add"))) not in later


@pytest.mark.any_broker
def test_metrics_need_the_token_or_staff(client, db, settings, django_user_model):
    from django.contrib.auth.models import Permission

    settings.TASKQUEUE_METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    settings.TASKQUEUE_METRICS_TOKEN = None
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    staff = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get("/metrics").status_code == 401  # staff, but may not view results
    staff.user_permissions.add(Permission.objects.get(codename="view_taskresult"))
    assert client.get("/metrics").status_code == 200


@pytest.mark.any_broker  # sets its own, unreachable, broker
def test_a_broker_that_does_not_answer_is_a_figure_not_a_failed_scrape(client, db, settings):
    settings.TASKQUEUE_METRICS_TOKEN = TOKEN
    settings.TASKQUEUE_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.TASKQUEUE_BROKER_TIMEOUT = 1
    TaskResultFactory(task_name="tests.tasks.slow", state="RETRY", date_done=None)
    samples = scrape(client)
    assert samples[("taskqueue_broker_up", ())] == 0
    assert not any(name.startswith("taskqueue_queue_") for name, _ in samples)
    assert samples[("taskqueue_tasks_unfinished", (("state", "RETRY"), ("task_name", "tests.tasks.slow")))] == 1
