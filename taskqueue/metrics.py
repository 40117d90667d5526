"""The Prometheus endpoint: every figure is read from the database and the broker when scraped.

Nothing is counted in the workers, so any number of worker processes (prefork children included)
and web processes serve the same figures, with no multiprocess directory and no cost per task.
The figures about finished tasks (finished, failed, retried, runtimes) cover the tasks that
finished in the last TASKQUEUE_METRICS_WINDOW seconds, so they go down as the window slides: every
family is a gauge, none a counter or a histogram (whose samples Prometheus takes to only grow and
`rate()` would misread). The runtimes are cumulative buckets with an `le` label, so
`histogram_quantile` works on them as they are.

Mount it in the project's urls.py: ``path("metrics", taskqueue.metrics.view)``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from . import states
from .brokers import get_broker
from .conf import get_settings
from .control import hostname_of
from .models import DeadLetter, TaskResult

RUNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
UNFINISHED_STATES = (states.PENDING, states.RECEIVED, states.STARTED, states.RETRY)


@never_cache
def view(request: HttpRequest) -> HttpResponse:
    """Prometheus text for a scraper with the bearer token (TASKQUEUE_METRICS_TOKEN) or for staff."""
    if not allowed(request):
        return HttpResponse("Send TASKQUEUE_METRICS_TOKEN as a bearer token, or log in as staff.\n", status=401,
                            content_type="text/plain", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def allowed(request: HttpRequest) -> bool:
    token = get_settings().METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "")
        if hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff and user.has_perm("taskqueue.view_taskresult"))


class Collector:
    """Reads the figures at each scrape (prometheus_client calls `collect`)."""

    def collect(self) -> Iterator[Metric]:
        window = get_settings().METRICS_WINDOW
        yield GaugeMetricFamily("taskqueue_metrics_window_seconds",
                                "The window of the finished-task figures (TASKQUEUE_METRICS_WINDOW)", value=window)
        yield from broker_metrics()
        finished = TaskResult.objects.filter(state__in=states.READY_STATES,
                                             date_done__gte=timezone.now() - timedelta(seconds=window)).order_by()
        yield from task_metrics(finished)
        yield from runtime_metrics(finished)
        yield dead_letter_metric()


def broker_metrics() -> Iterator[Metric]:
    up = GaugeMetricFamily("taskqueue_broker_up", "1 when the broker answered this scrape")
    try:
        holdings = get_broker().inspect(holders=True)
    except Exception:  # an unreachable broker is a figure to report, not a failed scrape
        up.add_metric([], 0)
        yield up
        return
    up.add_metric([], 1)
    yield up
    ready = GaugeMetricFamily("taskqueue_queue_ready_messages", "Messages waiting in each queue", labels=["queue"])
    for queue, size in sorted(holdings.sizes.items()):
        ready.add_metric([queue], size)
    yield ready
    if get_broker().reads_by_key:  # RabbitMQ cannot tell: no figure rather than a false 0
        delayed = GaugeMetricFamily("taskqueue_delayed_messages", "Messages waiting for their eta or countdown",
                                    labels=["queue"])
        for queue, count in sorted(holdings.later.items()):
            delayed.add_metric([queue], count)
        yield delayed
    timeout = get_settings().VISIBILITY_TIMEOUT
    live = {consumer: age for consumer, age in holdings.consumers.items() if age <= timeout}
    yield GaugeMetricFamily("taskqueue_in_flight_messages", "Messages held by live worker processes",
                            value=sum(len(holdings.held.get(consumer, ())) for consumer in live))
    processes: dict[str, int] = {}
    for consumer in live:
        processes[hostname_of(consumer)] = processes.get(hostname_of(consumer), 0) + 1
    yield GaugeMetricFamily("taskqueue_workers_live", "Workers with a fresh heartbeat", value=len(processes))
    per_worker = GaugeMetricFamily("taskqueue_worker_processes", "Live consuming processes of each worker",
                                   labels=["worker"])
    for worker, count in sorted(processes.items()):
        per_worker.add_metric([worker], count)
    yield per_worker


def task_metrics(finished) -> Iterator[Metric]:
    unfinished = GaugeMetricFamily("taskqueue_tasks_unfinished", "Stored tasks not finished yet, by name and state",
                                   labels=["task_name", "state"])
    rows = (TaskResult.objects.filter(state__in=UNFINISHED_STATES).order_by().values_list("task_name", "state")
            .annotate(n=Count("id")).values_list("task_name", "state", "n"))
    for name, state, n in sorted(rows):
        unfinished.add_metric([name, state], n)
    yield unfinished
    done = GaugeMetricFamily("taskqueue_tasks_finished", "Tasks finished in the window, by name and final state",
                             labels=["task_name", "state"])
    retries = GaugeMetricFamily("taskqueue_task_retries", "Retries of the tasks finished in the window, by name",
                                labels=["task_name"])
    totals: dict[str, int] = {}
    rows = (finished.values_list("task_name", "state").annotate(n=Count("id"), retried=Sum("retries"))
            .values_list("task_name", "state", "n", "retried"))
    for name, state, n, retried in sorted(rows):
        done.add_metric([name, state], n)
        totals[name] = totals.get(name, 0) + (retried or 0)
    for name, retried in sorted(totals.items()):
        retries.add_metric([name], retried)
    yield done
    yield retries


def runtime_metrics(finished) -> Iterator[Metric]:
    """Runtimes (start, else creation, to end) of the tasks finished in the window, in one
    aggregate: cumulative buckets (gauges with an `le` label) and the seconds they add up to."""
    buckets = GaugeMetricFamily("taskqueue_task_runtime_buckets",
                                "Tasks finished in the window that ran at most `le` seconds, by name (cumulative)",
                                labels=["task_name", "le"])
    busy = GaugeMetricFamily("taskqueue_task_busy_seconds", "Runtimes of the tasks finished in the window added up, "
                             "by name", labels=["task_name"])
    runtime = ExpressionWrapper(F("date_done") - Coalesce("date_started", "date_created"), output_field=DurationField())
    counts = {f"le{index}": Count("id", filter=Q(runtime__lte=timedelta(seconds=bound)))
              for index, bound in enumerate(RUNTIME_BUCKETS)}
    rows = finished.annotate(runtime=runtime).values("task_name").annotate(total=Count("id"), seconds=Sum("runtime"),
                                                                            **counts)
    for row in sorted(rows, key=lambda row: row["task_name"]):
        for index, bound in enumerate(RUNTIME_BUCKETS):
            buckets.add_metric([row["task_name"], floatToGoString(bound)], row[f"le{index}"])
        buckets.add_metric([row["task_name"], "+Inf"], row["total"])
        busy.add_metric([row["task_name"]], row["seconds"].total_seconds() if row["seconds"] is not None else 0.0)
    yield buckets
    yield busy


def dead_letter_metric() -> Metric:
    dead = GaugeMetricFamily("taskqueue_dead_letters", "Dead letters kept, by queue", labels=["queue"])
    for queue, n in sorted(DeadLetter.objects.order_by().values_list("queue").annotate(n=Count("id"))
                           .values_list("queue", "n")):
        dead.add_metric([queue], n)
    return dead
