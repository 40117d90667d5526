"""`manage.py check` says when the Redis broker would lose its messages in a restart."""

from __future__ import annotations

import pytest

from taskqueue.brokers import get_broker, reset_broker
from taskqueue.checks import check_redis_durability
from tests.helpers import RedisServer, held
from tests.tasks import add

pytestmark = [pytest.mark.slow, pytest.mark.any_broker, pytest.mark.any_database]  # private Redis servers only


@pytest.mark.parametrize("appendonly", [True, False])
def test_the_check_warns_about_a_redis_without_an_append_only_file(settings, appendonly):
    server = RedisServer(appendonly=appendonly).start()
    try:
        settings.TASKQUEUE_BROKER_URL = server.url
        warnings = check_redis_durability()
        assert [w.id for w in warnings] == ([] if appendonly else ["taskqueue.W003"])
    finally:
        server.cleanup()


def test_the_check_leaves_other_brokers_and_unreachable_servers_alone(settings):
    settings.TASKQUEUE_BROKER_URL = "django://"
    assert check_redis_durability() == []
    settings.TASKQUEUE_BROKER_URL = "redis://127.0.0.1:1/0"
    assert check_redis_durability() == []


@pytest.mark.parametrize("appendonly", [True, False])
def test_what_a_redis_restart_keeps_of_the_queue(settings, appendonly):
    """Why the check exists: without an append-only file the queue is gone after a restart."""
    server = RedisServer(appendonly=appendonly).start()
    try:
        settings.TASKQUEUE_BROKER_URL = server.url
        reset_broker()
        sent = [add.apply_async((i, i), queue="kept") for i in range(100)]
        server.restart()
        reset_broker()
        kept = sum(held(get_broker(), r.id) for r in sent)
        assert kept == (100 if appendonly else 0)
    finally:
        reset_broker()
        server.cleanup()
