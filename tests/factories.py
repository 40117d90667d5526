"""factory-boy factories for the rows and messages tests build: results, groups, chords, dead
letters, revoke markers, schedules and their runs, and messages (as objects, envelopes and signed
bytes).

Models come from `taskqueue.models` and the message type from `taskqueue.message` only, so the
factories do not depend on where the rest of the package keeps its internals.

    TaskResultFactory(state="FAILURE", queue="other")         # a saved row
    PeriodicTaskFactory(interval__every=5)                    # with its IntervalSchedule
    MessageFactory(task="tests.tasks.add", args=(1, 2))       # a taskqueue.message.Message
    SignedBodyFactory(payload=EnvelopeFactory(expires=12345)) # signed bytes as a broker holds them
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import timedelta

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from taskqueue import states
from taskqueue.message import Message, encode
from taskqueue.models import (
    CancelledTask,
    ChordCounter,
    CrontabSchedule,
    DeadLetter,
    GroupResult,
    IntervalSchedule,
    PeriodicRun,
    PeriodicTask,
    TaskResult,
)


def _uuid() -> str:
    return str(uuid.uuid4())


def signing_key() -> bytes:
    """The signing key of the configured settings (what the test worker checks)."""
    from taskqueue.conf import get_settings

    return get_settings().signing_key


# -- messages ---------------------------------------------------------------------------------

class MessageFactory(factory.Factory):
    """A `taskqueue.message.Message` (not sent): `tests.tasks.add(1, 2)` on the default queue."""

    class Meta:
        model = Message

    id = factory.LazyFunction(_uuid)
    task = "tests.tasks.add"
    args = (1, 2)


class EnvelopeFactory(factory.DictFactory):
    """The JSON envelope of a version-1 message as a dict, for bodies built by hand (wrong types,
    missing fields...): add or override any field, e.g. `EnvelopeFactory(expires=12345)`."""

    v = 1
    id = factory.Sequence(lambda n: f"envelope-{n}")
    task = "tests.tasks.add"
    args = factory.LazyFunction(lambda: [1, 2])
    kwargs = factory.LazyFunction(dict)


def signed(payload: bytes, key: bytes | None = None) -> bytes:
    """`payload` with the HMAC-SHA256 signature in front, as the protocol puts it (docs/protocol.md)."""
    key = signing_key() if key is None else key
    return hmac.new(key, payload, hashlib.sha256).hexdigest().encode() + b":" + payload


class SignedBodyFactory(factory.Factory):
    """Raw signed message bytes. `payload` is a dict (dumped as JSON), bytes (signed as they are),
    or left out: then `message` (a MessageFactory) is encoded the way producers do. `key` defaults
    to the configured signing key."""

    class Meta:
        model = bytes

    message = factory.SubFactory(MessageFactory)
    key = None
    payload = None

    @classmethod
    def _create(cls, model_class, message=None, key=None, payload=None):
        key = signing_key() if key is None else key
        if payload is None:
            return encode(message, key)
        if isinstance(payload, dict):
            payload = json.dumps(payload).encode()
        return signed(payload, key)

    _build = _create


# -- results ----------------------------------------------------------------------------------

class TaskResultFactory(DjangoModelFactory):
    """A stored result: a SUCCESS of `tests.tasks.add(2, 2)` unless told otherwise."""

    class Meta:
        model = TaskResult

    task_id = factory.LazyFunction(_uuid)
    task_name = "tests.tasks.add"
    state = states.SUCCESS
    args = factory.LazyFunction(lambda: [2, 2])
    kwargs = factory.LazyFunction(dict)
    result = 4
    queue = "default"
    date_done = factory.LazyFunction(timezone.now)

    class Params:
        # TaskResultFactory(failed=True): a FAILURE with its exception and traceback as the worker stores them
        failed = factory.Trait(
            task_name="tests.tasks.fail", state=states.FAILURE, args=factory.LazyFunction(list),
            result=factory.LazyFunction(lambda: {"exc_type": "ValueError", "exc_module": "builtins",
                                                 "exc_message": ["boom"]}),
            traceback="Traceback (most recent call last):\nValueError: boom",
        )
        # TaskResultFactory(expired=True): done long before any result expiry
        expired = factory.Trait(date_done=factory.LazyFunction(lambda: timezone.now() - timedelta(days=3)))


class GroupResultFactory(DjangoModelFactory):
    """A saved group: `members` successful results are created and listed in order."""

    class Meta:
        model = GroupResult

    class Params:
        members = 2

    group_id = factory.LazyFunction(_uuid)

    @factory.lazy_attribute
    def member_ids(self):
        return [[[row.task_id, None], None] for row in TaskResultFactory.create_batch(self.members,
                                                                                      group_id=self.group_id)]


class ChordCounterFactory(DjangoModelFactory):
    """A chord waiting on `total` members, its body `tests.tasks.tsum`."""

    class Meta:
        model = ChordCounter

    group_id = factory.LazyFunction(_uuid)
    total = 2
    remaining = factory.SelfAttribute("total")
    member_ids = factory.LazyAttribute(lambda counter: [_uuid() for _ in range(counter.total)])
    body = factory.LazyFunction(lambda: {"task": "tests.tasks.tsum", "args": [], "kwargs": {}, "options": {}})


class DeadLetterFactory(DjangoModelFactory):
    """A refused message, kept with its reason."""

    class Meta:
        model = DeadLetter

    message_id = factory.Sequence(lambda n: f"dead-{n}")
    task_name = "tests.tasks.add"
    queue = "default"
    reason = "malformed message"
    body = factory.LazyAttribute(lambda letter: json.dumps({"id": letter.message_id, "task": letter.task_name}))


class CancelledTaskFactory(DjangoModelFactory):
    """A revoke marker of the database broker; current for an hour unless `expires_at` says otherwise."""

    class Meta:
        model = CancelledTask

    task_id = factory.LazyFunction(_uuid)
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))


# -- periodic tasks ---------------------------------------------------------------------------

class IntervalScheduleFactory(DjangoModelFactory):
    class Meta:
        model = IntervalSchedule

    every = 5
    period = "seconds"


class CrontabScheduleFactory(DjangoModelFactory):
    class Meta:
        model = CrontabSchedule

    minute = "0"
    hour = "3"


class PeriodicTaskFactory(DjangoModelFactory):
    """`tests.tasks.tick(name)` every 5 s; `crontab=...`, `run_at=...` with `interval=None` for the
    other kinds."""

    class Meta:
        model = PeriodicTask

    name = factory.Sequence(lambda n: f"periodic-{n}")
    task = "tests.tasks.tick"
    args = factory.LazyAttribute(lambda periodic: [periodic.name])
    interval = factory.SubFactory(IntervalScheduleFactory)


class PeriodicRunFactory(DjangoModelFactory):
    class Meta:
        model = PeriodicRun

    periodic_task = factory.SubFactory(PeriodicTaskFactory)
    slot = factory.LazyFunction(timezone.now)
    task_id = factory.LazyFunction(_uuid)
