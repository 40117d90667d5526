"""Poison input: whatever one message holds, it ends stored or dead-lettered, and the batch goes on.

These drive `batching.process` in this process against the configured broker and database, on a
queue no worker consumes, so every step is visible; tests/faults/ does the same with workers.
"""

import dataclasses
import uuid

import pytest
from django.db import DatabaseError, connection

from taskqueue import AsyncResult, control, states
from taskqueue.brokers import Outgoing, get_broker
from taskqueue.conf import get_settings
from taskqueue.exceptions import TaskError, TaskExit
from taskqueue.models import DeadLetter, TaskResult
from taskqueue.outages import drop_broken_connections, is_outage
from taskqueue.signals import task_prerun
from taskqueue.worker import batch as batching
from taskqueue.worker import execute
from tests.factories import EnvelopeFactory, SignedBodyFactory
from tests.helpers import held
from tests.models import Run
from tests.tasks import add, exits, fail_with, loses_its_database_once, raises_unprintable, record_echo


@pytest.fixture
def queue(transactional_db):
    name = f"poison-{uuid.uuid4().hex[:8]}"
    yield name
    control.purge(name)


def _run_all(queue: str, count: int = 10) -> None:
    """Process batches until the queue is empty (a task not timed yet runs alone: the rest of its
    batch goes back to the queue)."""
    broker = get_broker()
    ctx = execute.ExecutionContext(broker=broker, hostname="test-poison", consumer_id="poison-consumer")
    for _ in range(50):
        batch = broker.reserve("poison-consumer", [queue], count=count, timeout=0)
        if not batch:
            return
        try:
            batching.process(batch, ctx)
        except Exception as exc:  # as the consumer loop does: an outage is waited out, nothing else leaves
            assert is_outage(exc), exc
            drop_broken_connections()
            broker.leases(requeue=["poison-consumer"], redelivered=False)
    raise AssertionError("the queue did not empty in 50 batches")


NASTY = ["nul \x00 inside", "lone surrogate \udc80 (bytes decoded with surrogateescape)", "\x00", "é\x00😀"]


@pytest.mark.parametrize("value", NASTY)
def test_a_value_the_database_refuses_runs_once_and_comes_back_as_it_was(queue, value):
    label = uuid.uuid4().hex
    sent = record_echo.apply_async((label, {"text": value, "list": [value]}), queue=queue)
    _run_all(queue)
    assert Run.objects.filter(label=label).count() == 1
    stored = TaskResult.objects.get(task_id=sent.id)
    assert stored.state == states.SUCCESS
    # read from the row, not from the notification that carried it
    assert AsyncResult(sent.id).get(timeout=5) == {"text": value, "list": [value]}
    assert not held(get_broker(), sent.id)


def test_a_failure_with_nul_in_its_message_and_traceback_is_stored(queue):
    sent = fail_with.apply_async(("nul \x00 in the error", "\udc80"), queue=queue)
    _run_all(queue)
    row = TaskResult.objects.get(task_id=sent.id)
    assert row.state == states.FAILURE and "nul" in row.traceback
    with pytest.raises(ValueError) as raised:
        AsyncResult(sent.id).get(timeout=5)
    assert raised.value.args == ("nul \x00 in the error", "\udc80")


def test_poison_bodies_are_dead_lettered_and_good_messages_beside_them_run(queue):
    broker = get_broker()
    good_before = add.apply_async((1, 2), queue=queue)
    def body(**fields) -> bytes:
        return SignedBodyFactory(payload=EnvelopeFactory(**fields))

    bodies = {
        "garbage-nul": b"\x00\xff\xfe garbage \x00 with NUL bytes",
        "wrong-type": body(id="wrong-type", expires=12345),
        "naive-eta": body(id="naive-eta", eta="2026-01-01T00:00:00"),
        "bad-link": body(id="bad-link", link=["not a signature"]),
        "nul-id": body(id="nul\x00id"),
        "invalid-utf8": SignedBodyFactory(payload=b'{"v": 1, "id": "invalid-utf8", "task": "tests.tasks.add", '
                                                  b'"args": ["\xff"]}'),
        "truncated": SignedBodyFactory(payload=b'{"v": 1, "id": "truncated", "task": "tests.ta'),
    }
    for key, body in list(bodies.items()):
        try:
            broker.publish([Outgoing(queue, key, body)])
        except (UnicodeDecodeError, DatabaseError):  # the database broker keeps text bodies: refused at once
            del bodies[key]
    good_after = add.apply_async((3, 4), queue=queue)
    _run_all(queue, count=20)
    assert good_before.get(timeout=5) == 3 and good_after.get(timeout=5) == 7
    assert DeadLetter.objects.count() == len(bodies)
    reasons = {letter.body: letter.reason for letter in DeadLetter.objects.all()}
    assert all(reasons.values())
    assert any("'expires' is a int" in reason for reason in reasons.values())
    assert not any(held(broker, key) for key in bodies)  # acked: never redelivered


def test_a_message_past_the_redelivery_limit_is_dead_lettered_without_being_decoded(queue):
    broker = get_broker()
    broker.publish([Outgoing(queue, "killer", b"imagine a body whose decoding kills the worker")])
    [delivery] = broker.reserve("poison-consumer", [queue], count=1, timeout=0)
    hopeless = dataclasses.replace(delivery, redeliveries=get_settings().MAX_REDELIVERIES + 3)
    ctx = execute.ExecutionContext(broker=broker, hostname="test-poison", consumer_id="poison-consumer")
    batching.process([hopeless], ctx)
    letter = DeadLetter.objects.get()
    assert "never finished; not decoded again" in letter.reason
    assert not held(broker, "killer")


def test_a_task_exiting_the_process_comes_back_wrapped_and_the_caller_survives(queue):
    sent = exits.apply_async((3,), queue=queue)
    _run_all(queue)
    with pytest.raises(TaskExit) as raised:
        AsyncResult(sent.id).get(timeout=5)
    assert isinstance(raised.value, TaskError) and "SystemExit" in str(raised.value)
    assert isinstance(AsyncResult(sent.id).result, TaskExit)


def test_an_exception_that_cannot_be_printed_is_stored_with_its_type_and_traceback(queue):
    sent = raises_unprintable.apply_async(queue=queue)
    _run_all(queue)
    row = TaskResult.objects.get(task_id=sent.id)
    assert row.state == states.FAILURE and row.result["exc_type"] == "Unprintable"
    assert "raises_unprintable" in row.traceback
    with pytest.raises(Exception) as raised:  # noqa: B017 - rebuilt from what could be stored
        AsyncResult(sent.id).get(timeout=5)
    assert type(raised.value).__name__ in ("Unprintable", "TaskError")


def test_a_signal_receiver_that_raises_fails_that_task_only(queue):
    def broken(sender, **kwargs):
        if kwargs["args"] == (1, 1):
            raise RuntimeError("a task_prerun receiver broke")

    task_prerun.connect(broken)
    try:
        first = add.apply_async((1, 1), queue=queue)
        second = add.apply_async((2, 2), queue=queue)
        _run_all(queue)
    finally:
        task_prerun.disconnect(broken)
    with pytest.raises(RuntimeError, match="receiver broke"):
        AsyncResult(first.id).get(timeout=5)
    assert AsyncResult(second.id).get(timeout=5) == 4


def test_a_task_that_loses_the_database_runs_again_instead_of_failing(queue):
    if connection.vendor != "postgresql":
        pytest.skip("a database server that goes away: SQLite is a file")
    label = uuid.uuid4().hex
    sent = loses_its_database_once.apply_async((label,), queue=queue)
    _run_all(queue)
    assert AsyncResult(sent.id).get(timeout=5) == "ran again"
    assert Run.objects.filter(label=label).count() == 1
    assert not TaskResult.objects.filter(task_id=sent.id, state=states.FAILURE).exists()
