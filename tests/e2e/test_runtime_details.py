"""Types through a real worker, routes, task logs, and database connections that drop."""

from datetime import UTC, date, datetime, time
from decimal import Decimal
from uuid import UUID

import pytest
from django.db import connection

from tests.tasks import add, echo, log_something


def test_extra_types_round_trip_through_the_worker(worker):
    value = {"when": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "day": date(2024, 1, 2),
             "at": time(7, 8), "amount": Decimal("12.50"), "id": UUID(int=7), "raw": b"\x01\x02",
             "pair": (1, "a")}
    assert echo.delay(value).get(timeout=10) == value


def test_routes_pick_the_queue(worker, settings):
    settings.TASKQUEUE_ROUTES = {"tests.tasks.a*": {"queue": "celery"}}
    res = add.delay(1, 1)
    assert res.get(timeout=10) == 2
    from taskqueue.models import TaskResult

    assert TaskResult.objects.get(task_id=res.id).queue == "celery"


def test_task_logs_carry_the_task_name_and_id(worker):
    res = log_something.delay("hello-log")
    res.get(timeout=10)
    assert worker.wait_for_output(f"tests.tasks.log_something[{res.id}] logged: hello-log", timeout=5)


def test_worker_reconnects_when_its_database_connections_are_killed(worker):
    assert add.delay(1, 1).get(timeout=10) == 2
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    results = [add.delay(i, i) for i in range(4)]
    assert [r.get(timeout=20) for r in results] == [0, 2, 4, 6]


def test_a_return_value_that_cannot_be_stored_fails_the_task(worker):
    from tests.tasks import bad_return

    res = bad_return.delay()
    with pytest.raises(TypeError, match="cannot be stored"):
        res.get(timeout=10)
    assert add.delay(1, 1).get(timeout=10) == 2  # and the worker goes on
