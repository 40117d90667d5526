"""Every Celery task and apply_async option is accepted at import or call time; those with a
meaning here are honoured (in the message built, or refused with a clear error)."""

import logging
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
import redis

from taskqueue import AsyncResult, Task, app, ratelimits, send_task, task
from taskqueue.conf import get_settings
from taskqueue.producer import build_message
from tests.tasks import add, ported, untyped

# The class attributes of Celery's Task (celery/app/task.py) and the options of its @app.task
# decorator (celery/app/base.py), the app object aside.
CELERY_TASK_OPTIONS = {
    "name": "unit.celery_options", "typing": True, "max_retries": 5, "default_retry_delay": 10,
    "rate_limit": "10/s", "ignore_result": False, "trail": True, "send_events": True,
    "store_errors_even_if_ignored": False, "serializer": "json", "time_limit": 60, "soft_time_limit": 50,
    "backend": None, "track_started": True, "acks_late": True, "acks_on_failure_or_timeout": True,
    "acks_on_failure": True, "acks_on_timeout": True, "reject_on_worker_lost": True, "throws": (KeyError,),
    "expires": 300, "priority": 3, "resultrepr_maxsize": 1024, "abstract": False, "store_eager_result": True,
    "autoretry_for": (OSError,), "dont_autoretry_for": (FileNotFoundError,), "retry_kwargs": {"max_retries": 2},
    "retry_backoff": True, "retry_backoff_max": 60, "retry_jitter": False, "bind": True, "queue": "q",
    "exchange": "x", "exchange_type": "direct", "routing_key": "q", "delivery_mode": 2, "compression": "zlib",
    "shared": True, "lazy": True, "Request": None, "Strategy": None, "pydantic": False, "pydantic_strict": False,
    "pydantic_context": None, "pydantic_dump_kwargs": None,
}


def test_every_celery_task_option_loads():
    made = task(**CELERY_TASK_OPTIONS)(lambda self, x: x)
    assert made.rate_limit == "10/s" and ratelimits.parse(made.rate_limit) == 10.0
    assert made.acks_late is True and made.reject_on_worker_lost is True
    assert made.retry_kwargs == {"max_retries": 2} and made.throws == (KeyError,)
    assert made.expires == 300 and made.priority == 3 and made.serializer == "json" and made.typing is True
    assert ported(4) == 4 and ported.rate_limit == "100/m"


def test_an_option_of_the_base_class_is_accepted_and_filter_applied():
    class WithAttribute(Task):
        table = "default"

    made = task(base=WithAttribute, table="orders", filter=lambda t: ("filtered", t))(lambda: None)
    assert made[0] == "filtered" and made[1].table == "orders"
    with pytest.raises(TypeError, match="unknown @task option"):
        task(nonsense=True)(lambda: None)


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"rate_limit": "10/d"}, ValueError, "invalid rate_limit"),
    ({"rate_limit": "fast"}, ValueError, "invalid rate_limit"),
    ({"serializer": "pickle"}, ValueError, "never pickle"),
    ({"serializer": "msgpack"}, ValueError, "JSON only"),
    ({"pydantic": True}, ValueError, r"pydantic=True\) is not supported"),
    ({"expires": "soon"}, TypeError, "expires="),
    ({"priority": "high"}, TypeError, "priority="),
])
def test_option_values_taskqueue_cannot_honour_fail_at_import(options, error, match):
    with pytest.raises(error, match=match):
        task(**options)(lambda: None)


def test_typing_checks_the_call_unless_disabled(settings):
    settings.TASKQUEUE_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing may be sent
    with pytest.raises(TypeError, match="too many positional arguments"):
        add.apply_async((1, 2, 3), retry=False)
    assert untyped.typing is False and add.typing is True
    with pytest.raises(redis.ConnectionError):  # untyped(1, 2, 3) got past the check: only the send fails
        untyped.apply_async((1, 2, 3), retry=False)


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (5, None, "task args must be a list or tuple, not int"),
    ("ab", None, "task args must be a list or tuple, not str"),
    ({1, 2}, None, "task args must be a list or tuple, not set"),
    ((1, 2), [("x", 1)], "task keyword arguments must be a mapping, not list"),
    ((1,), "y=2", "task keyword arguments must be a mapping, not str"),
])
def test_args_and_kwargs_of_the_wrong_type_fail_in_the_caller(settings, args, kwargs, match):
    settings.TASKQUEUE_BROKER_URL = "redis://127.0.0.1:1/0"
    for call in (add.apply_async, add.apply, partial(app.send_task, add.name), partial(send_task, add.name)):
        with pytest.raises(TypeError, match=match):
            call(args, kwargs)


def test_task_defaults_go_into_its_messages():
    settings = get_settings()
    msg = build_message(ported.name, (1,), {}, ported, {}, settings)
    assert msg.priority == 7
    expires = datetime.fromisoformat(msg.expires)
    assert timedelta(seconds=50) < expires - datetime.now(UTC) <= timedelta(seconds=60)
    msg = build_message(ported.name, (1,), {}, ported, {"priority": 1, "expires": 5}, settings)
    assert msg.priority == 1 and datetime.fromisoformat(msg.expires) - datetime.now(UTC) <= timedelta(seconds=5)
    assert build_message(add.name, (1, 2), {}, add, {}, settings).priority == 0


def test_changing_a_task_attribute_changes_its_messages():
    made = task(name="unit.mutable_defaults")(lambda: None)
    settings = get_settings()
    assert build_message(made.name, (), {}, made, {}, settings).time_limit is None
    made.time_limit, made.priority = 30, 2
    msg = build_message(made.name, (), {}, made, {}, settings)
    assert msg.time_limit == 30 and msg.priority == 2


def test_celery_apply_async_options_are_accepted_or_refused_clearly(settings):
    settings.TASKQUEUE_BROKER_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(ValueError, match="never pickle"):
        add.apply_async((1, 2), serializer="pickle")
    with pytest.raises(TypeError, match="unknown retry_policy key"):
        add.apply_async((1, 2), retry_policy={"retries": 1})
    with pytest.raises(TypeError, match="unknown option"):
        add.apply_async((1, 2), bogus=True)
    with pytest.raises(redis.ConnectionError):  # all accepted: only the (unreachable) broker fails
        add.apply_async((1, 2), serializer="json", compression="zlib", shadow="other", exchange="x",
                        exchange_type="direct", routing_key="default", add_to_parent=False, publisher=None,
                        producer=None, connection=None, delivery_mode=2, mandatory=False, immediate=False,
                        content_type="application/json", content_encoding="utf-8", reply_to="r",
                        declare=[], time_limit=10, soft_time_limit=5, ignore_result=True, headers={"h": 1},
                        stamped_headers=[], replaced_task_nesting=0, retry=False, retry_policy={"max_retries": 0})


def test_publish_is_retried_as_the_retry_policy_says(settings, caplog):
    settings.TASKQUEUE_BROKER_URL = "redis://127.0.0.1:1/0"
    caplog.set_level(logging.WARNING, logger="taskqueue.producer")
    with pytest.raises(redis.ConnectionError):
        add.apply_async((1, 2), retry=False)
    assert not [r for r in caplog.records if "attempt" in r.getMessage()]
    with pytest.raises(redis.ConnectionError):  # each attempt takes a while: redis-py retries too
        add.apply_async((1, 2), retry_policy={"max_retries": 1, "interval_start": 0.01})
    retries = [r.getMessage() for r in caplog.records if "Could not publish" in r.getMessage()]
    assert len(retries) == 1 and "attempt 1 again in 0.01 s" in retries[0]


def test_async_result_needs_an_id():
    with pytest.raises(ValueError, match="AsyncResult requires valid id, not <class 'NoneType'>"):
        AsyncResult(None)


def test_an_invalid_rate_limit_set_on_a_task_changes_nothing():
    made = task(name="unit.rate_at_run_time", rate_limit="1/s")(lambda: None)
    made.rate_limit = "120/m"
    with pytest.raises(ValueError, match="invalid rate_limit"):
        made.rate_limit = "often"
    assert made.rate_limit == "120/m"
