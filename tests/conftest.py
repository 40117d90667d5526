"""Fixtures: Redis reachability, a shared worker for the end-to-end tests, key clean-up."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from taskqueue.testing import start_worker


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _broker_is_redis() -> bool:
    return settings.TASKQUEUE_BROKER_URL.startswith("redis")


def _broker_is_amqp() -> bool:
    return settings.TASKQUEUE_BROKER_URL.startswith("amqp")


def _database_is_postgresql() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


UNIT_TESTS = Path(__file__).resolve().parent / "unit"
# CI runs the suite four times: PostgreSQL and SQLite, each with the Redis and the database broker.
# A test whose inputs are the same whatever the run's broker (or database) proves nothing new the
# second time, so it is marked and runs once:
#   any_broker    does not use the run's broker: runs only in the Redis-broker runs
#   any_database  does not use the run's database: runs only in the PostgreSQL runs
#   database_broker  sets up the database broker itself: runs only in the database-broker runs
#   reads_by_key  looks messages up by key in the broker: not in the RabbitMQ runs
#   amqp_only     RabbitMQ-specific (a private node of its own): runs only in the RabbitMQ-broker runs
# Tests under tests/unit/ are both any_broker and any_database. TASKQUEUE_TEST_EVERY_COMBINATION=1
# runs them all anyway (redis_only and amqp_only still need their broker).
SKIPS = {
    "redis_only": (lambda: not _broker_is_redis(), "Redis-specific; this run uses another broker"),
    "any_broker": (lambda: not _broker_is_redis(), "does not depend on the broker: runs in the Redis-broker runs"),
    "any_database": (lambda: not _database_is_postgresql(),
                     "does not depend on the database: runs in the PostgreSQL runs"),
    "database_broker": (_broker_is_redis, "uses the database broker whatever the run's: runs in its runs"),
    "reads_by_key": (lambda: _broker_is_amqp(), "lists or finds messages by key, which RabbitMQ cannot"),
    "amqp_only": (lambda: not _broker_is_amqp(), "RabbitMQ-specific: runs in the RabbitMQ-broker runs"),
}


def pytest_collection_modifyitems(config, items):
    every_combination = bool(os.environ.get("TASKQUEUE_TEST_EVERY_COMBINATION"))
    skips = {name: pytest.mark.skip(reason=reason) for name, (applies, reason) in SKIPS.items()
             if applies() and (name in ("redis_only", "amqp_only") or not every_combination)}
    for item in items:
        if UNIT_TESTS in item.path.parents:
            item.add_marker(pytest.mark.any_broker)
            item.add_marker(pytest.mark.any_database)
        for name, skip in skips.items():
            if item.get_closest_marker(name) is not None:
                item.add_marker(skip)
                break


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis (the tests' own DB number and key prefix)."""
    url = settings.REDIS_URL
    if not _redis_answers(url):
        if os.environ.get("TASKQUEUE_REQUIRE_REDIS"):
            pytest.fail(f"Redis at {url} does not answer and TASKQUEUE_REQUIRE_REDIS is set")
        pytest.skip(f"Redis at {url} does not answer")
    return url


@pytest.fixture(scope="session")
def redis_cluster():
    """A private 3-master Redis Cluster on loopback ports for the session (tests/helpers.py)."""
    from tests.helpers import RedisClusterServer

    cluster = RedisClusterServer().start()
    yield cluster
    cluster.cleanup()


@pytest.fixture(scope="session")
def broker_url(request) -> str:
    """The broker of this run, checked to answer (Redis, RabbitMQ) or simply the database."""
    if _broker_is_redis():
        return request.getfixturevalue("redis_url")
    if _broker_is_amqp():
        return request.getfixturevalue("amqp_url")
    return settings.TASKQUEUE_BROKER_URL


@pytest.fixture(scope="session")
def amqp_url():
    """RabbitMQ, in a vhost of this run's own, deleted at the end (rabbitmqctl, run as the
    server's administrator; without it the tests share the URL's vhost, kept apart by prefixes)."""
    from tests.helpers import rabbitmq_vhost

    with rabbitmq_vhost(settings.AMQP_URL) as url:
        yield url


@pytest.fixture(scope="session", autouse=True)
def _amqp_vhost_for_the_run(request):
    """On a RabbitMQ run, the vhost exists before any worker starts."""
    if _broker_is_amqp():
        request.getfixturevalue("amqp_url")


@pytest.fixture(scope="session", autouse=True)
def _clean_redis_keys():
    yield
    url = settings.REDIS_URL
    if _redis_answers(url):
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{settings.TASKQUEUE_KEY_PREFIX}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])


@pytest.fixture(scope="session", autouse=True)
def _flush_retries_after_a_deadlock():
    """Between tests the database is emptied with one TRUNCATE of every table, in no fixed order,
    while the shared worker may still be finishing a task in a transaction over two tables (a
    chord member and its counter). PostgreSQL then breaks the deadlock by failing one side; when
    it picks the flush, try the flush again."""
    from django.core.management.base import CommandError
    from django.core.management.commands import flush

    original = flush.Command.handle

    def handle(self, **options):
        for attempt in range(5):
            try:
                return original(self, **options)
            except CommandError as exc:
                if "deadlock" not in str(exc.__cause__).lower() or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    flush.Command.handle = handle
    yield
    flush.Command.handle = original


@pytest.fixture(scope="session", autouse=True)
def _close_listeners(django_db_setup):
    """LISTEN connections of this process would keep the test database from being dropped."""
    yield
    from taskqueue import notify
    from taskqueue.brokers import reset_broker

    notify.close()
    reset_broker()


@pytest.fixture
def app_conf():
    """`taskqueue.app.conf`, with what the test configures through the app object undone after it
    (the app's configuration is per process)."""
    from taskqueue import app, conf

    saved = conf.layers()
    yield app.conf
    conf.restore_layers(saved)


@pytest.fixture(scope="session")
def shared_worker(broker_url, django_db_setup, django_db_blocker):
    """One prefork worker (2 processes) on the default and `celery` queues for the whole session."""
    with django_db_blocker.unblock():
        # at INFO: tests read its retry lines, and a failing test's output shows each task's outcome
        worker = start_worker("-c", "2", "-Q", "default,celery", "--hostname", "shared@tests", "-l", "info")
    yield worker
    worker.terminate(timeout=20)


@pytest.fixture
def worker(shared_worker, transactional_db):
    """The shared worker, in a test whose database writes are committed (visible to the worker)."""
    return shared_worker


@pytest.fixture(params=["worker", pytest.param("eager", marks=pytest.mark.any_broker)])
def mode(request, transactional_db, settings):
    """A test taking `mode` runs twice: through the shared worker, and eagerly in this process."""
    if request.param == "worker":
        request.getfixturevalue("worker")
    else:
        settings.TASKQUEUE_TASK_ALWAYS_EAGER = True
    return request.param


@pytest.fixture
def view_only_client(request, client):
    """A test client logged in as staff with only the *view* permissions of taskqueue's models
    (with the test's own database fixture: `db` unless it asked for `transactional_db`)."""
    from django.contrib.auth.models import Permission, User

    request.getfixturevalue("transactional_db" if "transactional_db" in request.fixturenames else "db")
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="taskqueue",
                                                        codename__startswith="view_"))
    client.force_login(user)
    return client
