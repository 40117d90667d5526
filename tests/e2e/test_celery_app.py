"""The app object as Celery has it: `app.conf` (update, attributes, items, `config_from_object`
with Celery's setting names), `Celery(main, broker=, backend=, include=)`, `autodiscover_tasks`,
`app.control` (revoke, purge, ping, inspect) and Celery's signals with Celery's arguments."""

import sys
import types
from datetime import timedelta

import pytest

import taskqueue
from taskqueue import AsyncResult, Celery, app, chain, control, signals, states
from taskqueue.brokers import get_broker
from taskqueue.conf import get_settings
from taskqueue.exceptions import ImproperlyConfigured, SoftTimeLimitExceeded
from taskqueue.models import PeriodicTask
from taskqueue.testing import start_worker
from tests.helpers import wait_until
from tests.models import Run
from tests.tasks import add, always_retry, fail, record

CONFIGURED = {"DJANGO_SETTINGS_MODULE": "tests.celery_configured.settings"}


def recorded(signal: str, task_id: str | None = None) -> list[str]:
    runs = Run.objects.filter(label__startswith=f"{signal}|")
    if task_id is not None:
        runs = runs.filter(task_id=task_id)
    return [run.label.split("|", 1)[1] for run in runs.order_by("id")]


# -- app.conf ---------------------------------------------------------------------------------

@pytest.mark.any_broker
@pytest.mark.any_database
def test_conf_update_attribute_and_item_access_change_the_settings(app_conf):
    app_conf.update(result_expires=3600, task_track_started=False)
    app_conf.task_default_queue = "from-attribute"
    app_conf["task_time_limit"] = 30
    settings = get_settings()
    assert settings.result_expires == timedelta(hours=1) and not settings.TRACK_STARTED
    assert settings.DEFAULT_QUEUE == "from-attribute" and settings.TASK_TIME_LIMIT == 30
    assert app_conf.task_default_queue == app_conf["task_default_queue"] == "from-attribute"
    assert app_conf.result_expires == timedelta(hours=1) and "task_default_queue" in app_conf
    app_conf.update({"visibility_timeout": 7})  # our own names, lowercase, work too
    assert get_settings().VISIBILITY_TIMEOUT == 7 and app_conf.visibility_timeout == 7


def test_conf_default_queue_routes_what_is_sent(transactional_db, broker_url, app_conf):
    app_conf.task_default_queue = "conf-default"
    app_conf.task_routes = {"tests.tasks.fail": {"queue": "conf-routed"}, "tests.tasks.m*": "conf-glob"}
    add.delay(1, 1)
    fail.delay()
    try:
        sizes = get_broker().inspect().sizes
        assert sizes.get("conf-default") == 1 and sizes.get("conf-routed") == 1
    finally:
        for queue in ("conf-default", "conf-routed"):
            control.purge(queue)


@pytest.mark.any_broker
@pytest.mark.any_database
def test_config_from_django_settings_with_the_celery_namespace(settings, app_conf):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/3"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CELERY_TASK_EAGER_PROPAGATES = True
    settings.CELERY_RESULT_EXPIRES = 120
    settings.CELERY_TASK_DEFAULT_QUEUE = "celery-named"
    settings.CELERY_TASK_ROUTES = [{"a.*": {"queue": "qa"}}, {"b.b": "qb"}]
    settings.CELERY_TASK_TIME_LIMIT = 60
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 50
    settings.CELERY_TASK_TRACK_STARTED = False
    settings.CELERY_WORKER_PREFETCH_MULTIPLIER = 4
    settings.CELERY_TASK_ACKS_LATE = True  # no equivalent: accepted, readable
    settings.CELERY_TASK_SERIALIZER = "json"
    settings.CELERY_ACCEPT_CONTENT = ["application/json"]
    app.config_from_object("django.conf:settings", namespace="CELERY")
    s = get_settings()
    assert (s.BROKER_URL, s.TASK_ALWAYS_EAGER, s.TASK_EAGER_PROPAGATES) == ("redis://127.0.0.1:6379/3", True, True)
    assert s.result_expires == timedelta(seconds=120) and s.DEFAULT_QUEUE == "celery-named"
    assert s.ROUTES == {"a.*": {"queue": "qa"}, "b.b": {"queue": "qb"}}
    assert (s.TASK_TIME_LIMIT, s.TASK_SOFT_TIME_LIMIT, s.TRACK_STARTED, s.PREFETCH) == (60, 50, False, 4)
    assert app.conf.task_acks_late is True and app.conf.broker_url == "redis://127.0.0.1:6379/3"
    assert app.conf.worker_concurrency is None  # a Celery setting nobody set
    # read lazily: a later change of the Django setting is seen
    settings.CELERY_TASK_DEFAULT_QUEUE = "changed"
    assert get_settings().DEFAULT_QUEUE == "changed"


class ConfigObject:
    broker_url = "redis://127.0.0.1:6379/4"
    task_default_queue = "from-object"
    not_a_setting = "ignored"


@pytest.mark.any_broker
@pytest.mark.any_database
def test_config_from_an_object_a_module_or_a_path(app_conf):
    app.config_from_object(ConfigObject)
    assert get_settings().DEFAULT_QUEUE == "from-object" and "not_a_setting" not in app_conf
    app.config_from_object(f"{__name__}:ConfigObject")
    assert get_settings().BROKER_URL == "redis://127.0.0.1:6379/4"
    module = types.ModuleType("celeryconfig_probe")
    module.task_default_queue, module.include = "from-module", ["tests.e2e.celery_included"]
    sys.modules["celeryconfig_probe"] = module
    try:
        app.config_from_object("celeryconfig_probe", silent=False, force=True)
    finally:
        del sys.modules["celeryconfig_probe"]
    assert get_settings().DEFAULT_QUEUE == "from-module"
    assert "tests.e2e.celery_included.included_task" in app.tasks  # `include` imported it
    app.config_from_object("no.such.module", silent=True)
    with pytest.raises(ImportError):
        app.config_from_object("no.such.module")


@pytest.mark.any_broker
@pytest.mark.any_database
@pytest.mark.parametrize(("setting", "value", "message"), [
    ("task_serializer", "pickle", "JSON only"),
    ("accept_content", ["json", "pickle"], "JSON only"),
    ("result_serializer", "msgpack", "JSON only"),
    ("broker_url", "sqs://", "sqs:// is not supported"),
    ("result_backend", "rpc://", "Django's database"),
    ("task_routes", [lambda name, args, kwargs, options, task=None, **kw: None], "router function"),
])
def test_a_setting_that_would_mislead_is_refused(app_conf, setting, value, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        app_conf.update({setting: value})


@pytest.mark.any_broker
@pytest.mark.any_database
def test_a_refused_setting_in_django_settings_fails_config_from_object(settings, app_conf):
    settings.CELERY_TASK_SERIALIZER = "pickle"
    with pytest.raises(ImproperlyConfigured, match="JSON only"):
        app.config_from_object("django.conf:settings", namespace="CELERY")


@pytest.mark.any_broker
@pytest.mark.any_database
def test_celery_constructor_honours_broker_include_and_checks_backend(app_conf, broker_url):
    assert Celery is taskqueue.TaskQueue and isinstance(taskqueue.app, Celery)
    proj = Celery("proj", broker="redis://127.0.0.1:6379/5", backend="django-db",
                  include=["tests.e2e.celery_included"])
    assert get_settings().BROKER_URL == "redis://127.0.0.1:6379/5" and proj.main == "proj"
    assert "tests.e2e.celery_included.included_task" in proj.tasks
    Celery("seed", broker=broker_url, backend="redis://localhost:6379")  # the seeds pass a Redis backend
    for backend in ("rpc://", "cache+memcached://127.0.0.1:11211/", "db+postgresql://localhost/results"):
        with pytest.raises(ImproperlyConfigured, match="Django's database"):
            Celery("proj", backend=backend)


@pytest.mark.any_broker
@pytest.mark.any_database
def test_autodiscover_tasks(app_conf):
    app.autodiscover_tasks()  # installed apps' tasks.py are imported anyway
    app.autodiscover_tasks(["tests.e2e.celery_package", "tests.e2e.celery_included"])  # the second has no .tasks
    assert "tests.e2e.celery_package.tasks.discovered" in app.tasks
    app.autodiscover_tasks(lambda: ["tests.e2e.celery_package"], force=True)


def test_the_worker_takes_its_configuration_from_config_from_object(transactional_db, broker_url):
    """tests/celery_configured: CELERY_TASK_DEFAULT_QUEUE chooses the queue the worker consumes,
    CELERY_TASK_SOFT_TIME_LIMIT limits a task that sets none, CELERY_BEAT_SCHEDULE and the
    periodic tasks added in code are stored."""
    worker = start_worker("-c", "1", "--hostname", "configured@tests", "--beat", env=CONFIGURED)
    try:
        assert "via-celery-conf" in worker.output
        with pytest.raises(SoftTimeLimitExceeded):
            record.apply_async(("soft-limited", 5), queue="via-celery-conf").get(timeout=15)
        periodic = wait_until(lambda: PeriodicTask.objects.filter(name="configured-add").first(), timeout=10,
                              message="beat_schedule written")
        assert (periodic.task, periodic.args, periodic.interval.every) == ("tests.tasks.add", [1, 2], 3600)
        # app.add_periodic_task, called by an on_after_configure receiver (tests/celery_configured)
        added = {row.name: row for row in PeriodicTask.objects.exclude(name="configured-add")}
        assert set(added) == {"added in code", "tests.tasks.add(5, y=5)"}
        assert (added["added in code"].args, added["added in code"].interval.every) == ([2, 3], 600)
        crontab = added["tests.tasks.add(5, y=5)"]
        assert (crontab.args, crontab.kwargs, crontab.crontab.hour, crontab.crontab.minute) == ([5], {"y": 5}, "7", "0")
    finally:
        worker.terminate()


# -- app.control -------------------------------------------------------------------------------

def test_control_ping_registered_and_stats(worker):
    # live from its next heartbeat: with the database broker the flush between tests drops the lease rows
    wait_until(lambda: {"shared@tests": {"ok": "pong"}} in app.control.ping(), timeout=5, message="pong")
    inspect = app.control.inspect()
    assert inspect.ping()["shared@tests"] == {"ok": "pong"}
    assert "tests.tasks.add" in inspect.registered()["shared@tests"]
    assert add.delay(1, 2).get(timeout=10) == 3
    stats = inspect.stats()["shared@tests"]
    assert stats["pool"]["max-concurrency"] == 2 and stats["total"]["tests.tasks.add"] >= 1
    assert app.control.inspect(destination=["nobody@nowhere"]).ping() is None


def test_control_inspect_active_and_revoke_terminate(transactional_db, broker_url):
    worker = start_worker("-c", "1", "-Q", "inspected", "--hostname", "inspected@tests")
    try:
        res = record.apply_async(("inspect-me", 30), queue="inspected")
        wait_until(lambda: Run.objects.filter(label="inspect-me").exists(), timeout=10, message="task started")
        active = wait_until(lambda: (app.control.inspect().active() or {}).get("inspected@tests"), timeout=5,
                            message="listed as active")
        assert [(e["id"], e["name"], e["args"], e["hostname"]) for e in active] == [
            (res.id, "tests.tasks.record", ["inspect-me", 30], "inspected@tests")]
        assert active[0]["delivery_info"]["routing_key"] == "inspected" and active[0]["time_start"]
        assert app.control.inspect().reserved()["inspected@tests"] == []
        stats = app.control.inspect().stats()["inspected@tests"]  # from the record runworker wrote at start
        assert stats["pid"] == worker.pid and 0 <= stats["uptime"] < 60
        app.control.revoke(res.id, terminate=True, signal="SIGKILL")
        wait_until(lambda: AsyncResult(res.id).state == states.REVOKED, timeout=5, message="revoked")
        wait_until(lambda: not app.control.inspect().active().get("inspected@tests"), timeout=10,
                   message="no longer active")
    finally:
        worker.terminate()


def test_control_reserved_and_scheduled_from_the_lease_records(transactional_db, broker_url):
    """A consumer's lease (taken here through the broker, as a worker takes it) makes its worker
    live; what it holds and has not started is reserved; what waits for its eta is scheduled."""
    broker = get_broker()
    consumer = "leaser@tests.0a0b0c0d.1"
    held = add.apply_async((5, 5), queue="leased")
    later = add.apply_async((6, 6), queue="leased", countdown=60)
    broker.leases([consumer])  # its lease, as a worker's supervisor renews it
    [delivery] = broker.reserve(consumer, ["leased"], count=1, timeout=0)
    try:
        inspect = app.control.inspect()
        assert [e["id"] for e in inspect.reserved()["leaser@tests"]] == [held.id]
        assert inspect.active()["leaser@tests"] == []  # tracked (TASKQUEUE_TRACK_STARTED) and not STARTED
        if broker.reads_by_key:  # RabbitMQ's delay queues cannot be read
            scheduled = [e for e in inspect.scheduled()["broker"] if e["request"]["id"] == later.id]
            assert scheduled and scheduled[0]["request"]["args"] == [6, 6] and scheduled[0]["eta"]
    finally:
        broker.ack([delivery])
        broker.leases(requeue=[consumer])  # forget its lease
        app.control.revoke(later.id)


def test_control_purge_empties_every_known_queue(transactional_db, broker_url, app_conf):
    app_conf.task_routes = {"tests.tasks.mul": {"queue": "purge-routed"}}
    from tests.tasks import mul

    mul.delay(2, 2)
    mul.delay(3, 3)
    add.apply_async((1, 1), queue="purge-other")
    assert app.control.purge() >= 3
    sizes = get_broker().inspect().sizes
    assert not sizes.get("purge-routed") and not sizes.get("purge-other")


# -- signals ----------------------------------------------------------------------------------

@pytest.mark.any_broker
@pytest.mark.any_database
def test_signals_are_taskqueue_signals_with_celery_names():
    assert app.signals is signals and taskqueue.signals is signals
    for name in ("task_prerun", "task_postrun", "task_success", "task_failure", "task_retry", "task_revoked",
                 "before_task_publish", "after_task_publish", "worker_ready", "worker_shutdown",
                 "worker_process_init", "task_received", "setup_logging"):
        assert hasattr(signals, name)


@pytest.mark.any_broker
@pytest.mark.any_database
def test_signals_connect_as_celery_decorators_with_senders_by_name():
    seen = []

    @signals.task_success.connect
    def plain(sender=None, result=None, **kwargs):
        seen.append(("plain", result))

    @signals.after_task_publish.connect(sender="tests.tasks.add")
    def by_name(sender=None, **kwargs):
        seen.append(("by_name", sender))

    try:
        assert plain is not None and by_name is not None  # Django's connect would have returned None
        signals.task_success.send(sender=add, result=4)
        signals.after_task_publish.send(sender="".join(["tests.tasks.", "add"]), body=None)  # another str object
        signals.after_task_publish.send(sender="tests.tasks.mul", body=None)
        assert seen == [("plain", 4), ("by_name", "tests.tasks.add")]
    finally:
        signals.task_success.disconnect(plain)
        signals.after_task_publish.disconnect(by_name, sender="tests.tasks.add")


def test_publish_signals_carry_celerys_arguments(transactional_db, broker_url):
    seen = []

    def before(sender=None, body=None, exchange=None, routing_key=None, headers=None, properties=None,
               declare=None, retry_policy=None, **kwargs):
        seen.append(("before", sender, body[0], body[1], routing_key, headers["id"], headers["task"],
                     properties["priority"]))

    def after(sender=None, body=None, exchange=None, routing_key=None, **kwargs):
        seen.append(("after", sender, body[0], routing_key))

    signals.before_task_publish.connect(before)
    signals.after_task_publish.connect(after)
    try:
        res = add.apply_async((2,), {"y": 3}, queue="publish-signals", priority=0)
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)
        control.purge("publish-signals")
    assert seen == [("before", "tests.tasks.add", [2], {"y": 3}, "publish-signals", res.id, "tests.tasks.add", 0),
                    ("after", "tests.tasks.add", [2], "publish-signals")]


@pytest.fixture
def configured_worker(transactional_db, broker_url):
    """A worker whose process has tests/celery_configured/receivers.py connected."""
    worker = start_worker("-c", "1", "-Q", "signals", "--hostname", "signals@tests", env=CONFIGURED)
    yield worker
    worker.terminate()


def test_task_signals_in_the_worker_carry_celerys_arguments(configured_worker):
    ok = add.apply_async((2, 3), queue="signals")
    assert ok.get(timeout=10) == 5
    bad = fail.apply_async((1,), queue="signals")
    with pytest.raises(ValueError):
        bad.get(timeout=10)
    retried = always_retry.apply_async(("signal-retry",), queue="signals")
    with pytest.raises(KeyError):
        retried.get(timeout=15)
    wait_until(lambda: len(recorded("task_postrun", retried.id)) == 4, timeout=10, message="all attempts done")
    assert recorded("task_prerun", ok.id) == ["tests.tasks.add|[2, 3]|{}|True"]
    assert recorded("task_success", ok.id) == ["tests.tasks.add|5"]
    assert recorded("task_postrun", ok.id) == ["tests.tasks.add|SUCCESS|5"]
    assert recorded("task_failure", bad.id) == ["tests.tasks.fail|ValueError|[1]|True|True"]
    assert recorded("task_postrun", bad.id) == ["tests.tasks.fail|FAILURE|ValueError('boom')"]
    assert recorded("task_retry", retried.id) == [
        f"tests.tasks.always_retry|Retry|KeyError|{n}|True" for n in range(3)]


@pytest.mark.any_database
def test_task_revoked_where_the_revoke_takes_effect(configured_worker):
    # its own soft limit: the configured default (CELERY_TASK_SOFT_TIME_LIMIT, 0.5 s) would otherwise
    # end it (FAILURE) before a loaded worker's next revocation check (every 0.5 s) stops it
    running = record.apply_async(("revoke-running", 30), queue="signals", soft_time_limit=60)
    wait_until(lambda: Run.objects.filter(label="revoke-running").exists(), timeout=10, message="started")
    running.revoke(terminate=True)
    wait_until(lambda: recorded("task_revoked", running.id), timeout=10, message="task_revoked for terminate")
    assert recorded("task_revoked", running.id) == ["tests.tasks.record|True|False|15"]  # SIGTERM, as in Celery
    killed = record.apply_async(("revoke-killed", 30), queue="signals", soft_time_limit=60)
    wait_until(lambda: Run.objects.filter(label="revoke-killed").exists(), timeout=10, message="started")
    killed.revoke(terminate=True, signal="SIGKILL")
    wait_until(lambda: recorded("task_revoked", killed.id), timeout=10, message="task_revoked for SIGKILL")
    assert recorded("task_revoked", killed.id) == ["tests.tasks.record|True|False|9"]
    expired = add.apply_async((1, 1), queue="signals", expires=0.01, countdown=0.5)
    wait_until(lambda: recorded("task_revoked", expired.id), timeout=10, message="task_revoked for expiry")
    assert recorded("task_revoked", expired.id) == ["tests.tasks.add|False|True|None"]
    # revoked while it waits, or before it was sent (a chain's later step): as in Celery, the worker
    # that meets its message acks it unrun and sends task_revoked; the revoking process sends none
    seen = []

    def receiver(sender=None, request=None, **kwargs):
        seen.append(request.id)

    signals.task_revoked.connect(receiver)
    try:
        queued = add.apply_async((4, 4), queue="signals", countdown=1)
        app.control.revoke(queued.id)
        steps = chain(add.si(1, 1).set(queue="signals", countdown=1), add.si(2, 2).set(queue="signals"),
                      add.si(3, 3).set(queue="signals"))()
        steps.parent.revoke()  # the middle step: sent once the first one succeeds
        wait_until(lambda: recorded("task_revoked", queued.id), timeout=10, message="task_revoked for a waiting task")
        wait_until(lambda: recorded("task_revoked", steps.parent.id), timeout=10,
                   message="task_revoked for a chain step revoked before it was sent")
    finally:
        signals.task_revoked.disconnect(receiver)
    assert recorded("task_revoked", queued.id) == ["tests.tasks.add|False|False|None"]
    assert recorded("task_revoked", steps.parent.id) == ["tests.tasks.add|False|False|None"]
    assert seen == []


def test_worker_signals(transactional_db, broker_url):
    worker = start_worker("-c", "1", "-Q", "worker-signals", "--hostname", "ws@tests", env=CONFIGURED)
    try:
        assert recorded("worker_init") and recorded("worker_ready")
        wait_until(lambda: recorded("worker_process_init"), timeout=10, message="worker_process_init")
    finally:
        worker.terminate()
    wait_until(lambda: recorded("worker_shutdown"), timeout=10, message="worker_shutdown")
