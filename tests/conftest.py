"""Fixtures: Redis reachability, a shared worker for the end-to-end tests, key clean-up."""

from __future__ import annotations

import os

import pytest
import redis
from django.conf import settings

from taskqueue.testing import start_worker


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = settings.TASKQUEUE_BROKER_URL
    if not _redis_answers(url):
        if os.environ.get("TASKQUEUE_REQUIRE_REDIS"):
            pytest.fail(f"Redis at {url} does not answer and TASKQUEUE_REQUIRE_REDIS is set")
        pytest.skip(f"Redis at {url} does not answer")
    return url


@pytest.fixture(scope="session", autouse=True)
def _clean_redis_keys():
    yield
    url = settings.TASKQUEUE_BROKER_URL
    if _redis_answers(url):
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{settings.TASKQUEUE_KEY_PREFIX}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])


@pytest.fixture(scope="session")
def shared_worker(redis_url, django_db_setup, django_db_blocker):
    """One prefork worker (2 processes) on the default and `celery` queues for the whole session."""
    with django_db_blocker.unblock():
        worker = start_worker("-c", "2", "-Q", "default,celery", "--hostname", "shared@tests")
    yield worker
    worker.terminate(timeout=20)


@pytest.fixture
def worker(shared_worker, transactional_db):
    """The shared worker, in a test whose database writes are committed (visible to the worker)."""
    return shared_worker
