"""Celery's setting names and what each becomes (taskqueue.celeryconf), without Django settings."""

from datetime import timedelta

import pytest

from taskqueue import celeryconf
from taskqueue.conf import FIELD_NAMES
from taskqueue.exceptions import ImproperlyConfigured


def test_every_celery_setting_is_known_and_every_mapped_one_exists_here():
    assert len(celeryconf.CELERY_SETTINGS) == 198  # celery/app/defaults.py, 5.x
    assert set(celeryconf.MAPPED) <= celeryconf.CELERY_SETTINGS
    assert {field for field, _ in celeryconf.MAPPED.values()} <= FIELD_NAMES


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("broker_url", "redis://h:1/2", {"broker_url": "redis://h:1/2", "BROKER_URL": "redis://h:1/2"}),
    ("TASK_DEFAULT_QUEUE", "q", {"task_default_queue": "q", "DEFAULT_QUEUE": "q"}),
    ("result_expires", 60, {"result_expires": 60, "RESULT_EXPIRES": timedelta(seconds=60)}),
    ("result_expires", None, {"result_expires": None, "RESULT_EXPIRES": None}),
    ("task_routes", ({"a": "qa"}, {"a": "later", "b": {"queue": "qb"}}),
     {"task_routes": ({"a": "qa"}, {"a": "later", "b": {"queue": "qb"}}),
      "ROUTES": {"a": {"queue": "qa"}, "b": {"queue": "qb"}}}),
    ("worker_prefetch_multiplier", 0, {"worker_prefetch_multiplier": 0}),
    ("include", "pkg.tasks", {"include": "pkg.tasks", "IMPORTS": ("pkg.tasks",)}),
    ("task_acks_late", True, {"task_acks_late": True}),
    ("visibility_timeout", 9, {"visibility_timeout": 9, "VISIBILITY_TIMEOUT": 9}),
    ("my_own_thing", 1, {"my_own_thing": 1}),
])
def test_translate(name, value, expected):
    assert celeryconf.translate(name, value, FIELD_NAMES) == expected


@pytest.mark.parametrize(("name", "value"), [
    ("task_serializer", "pickle"), ("accept_content", ["pickle"]), ("result_accept_content", ["yaml"]),
    ("broker_url", "sqs://"), ("result_backend", "mongodb://x"),
])
def test_refused(name, value):
    with pytest.raises(ImproperlyConfigured):
        celeryconf.translate(name, value, FIELD_NAMES)


def test_namespaces():
    assert celeryconf.strip_namespace("CELERY_BROKER_URL", "CELERY") == "broker_url"
    assert celeryconf.strip_namespace("BROKER_URL", "CELERY") is None
    assert celeryconf.strip_namespace("broker_url", None) == "broker_url"
    assert celeryconf.is_setting("BROKER_URL", FIELD_NAMES) and not celeryconf.is_setting("os", FIELD_NAMES)
