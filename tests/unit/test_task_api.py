"""The task API without a broker: direct calls, argument checks, options, eager mode."""

import pytest

from taskqueue import Task, registry, signature, task
from taskqueue.exceptions import NotRegistered
from tests.tasks import add, whoami


def test_direct_call_runs_in_process():
    assert add(2, 2) == 4
    assert whoami()["id"] is None


def test_default_name_and_registry():
    assert add.name == "tests.tasks.add"
    assert registry.get_task("tests.tasks.add") is add
    with pytest.raises(NotRegistered, match="known:"):
        registry.get_task("nope.nothing")


def test_decorator_options_and_base():
    class Base(Task):
        custom = 1

    @task(name="unit.opts", bind=True, queue="q1", max_retries=7, base=Base, lock_key="k")
    def opts(self, k):
        return self.name

    assert isinstance(opts, Base) and opts.queue == "q1" and opts.max_retries == 7
    assert opts(1) == "unit.opts"
    assert opts.lock_value((), {"k": 5}) == "unit.opts:5"
    with pytest.raises(TypeError, match="unknown @task option"):
        task(nonsense=True)(lambda: None)


def test_bad_calls_fail_in_the_caller_before_sending(settings):
    settings.TASKQUEUE_BROKER_URL = "redis://127.0.0.1:1/0"  # would fail loudly if anything were sent
    with pytest.raises(TypeError, match="missing a required argument"):
        add.delay(1)
    with pytest.raises(TypeError, match="cannot send"):
        add.delay(1, object())
    with pytest.raises(TypeError, match="unknown option"):
        add.apply_async((1, 2), bogus=True)


def test_signatures_are_dicts():
    import json

    sig = add.s(2)
    assert dict(sig) == {"task": "tests.tasks.add", "args": [2], "kwargs": {}, "options": {},
                         "subtask_type": None, "immutable": False}
    again = signature(json.loads(json.dumps(sig)))
    assert again == sig and again(3) == 5
    assert add.si(1, 1).immutable
    assert sig.clone(args=(1,)).args == (1, 2)
    assert sig.set(queue="x").options["queue"] == "x"


def test_system_checks_name_the_fix(settings):
    from taskqueue.checks import check_settings

    assert check_settings() == []
    settings.TASKQUEUE_BROKER_URL = "django://"
    assert check_settings() == []
    settings.TASKQUEUE_BROKER_URL = "django://nosuchdb"
    assert [e.id for e in check_settings()] == ["taskqueue.E001"]
    settings.TASKQUEUE_BROKER_URL = "amqp://guest@localhost//"
    assert check_settings() == []  # RabbitMQ
    settings.TASKQUEUE_BROKER_URL = "sqs://"
    assert "unknown scheme" in check_settings()[0].msg
    settings.TASKQUEUE_BROKER_URL = "redis://127.0.0.1:6379/0"
    settings.TASKQUEUE_VISIBILITY_TIMEOUT, settings.TASKQUEUE_HEARTBEAT_INTERVAL = 2, 5
    assert [e.id for e in check_settings()] == ["taskqueue.E003"]
