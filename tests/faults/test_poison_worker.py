"""Poison input against a real worker: NUL arguments and bodies built to break the decoder end up
stored or dead-lettered, while every consumer keeps running and good tasks keep flowing."""

from __future__ import annotations

import time

import pytest
from django.db import DatabaseError

from taskqueue import AsyncResult
from taskqueue.brokers import Outgoing, get_broker
from taskqueue.models import DeadLetter
from tests.factories import EnvelopeFactory, SignedBodyFactory
from tests.helpers import report
from tests.models import Run
from tests.tasks import add, record_echo

pytestmark = pytest.mark.slow


def test_poison_never_stops_a_consumer(worker):
    consumers = worker.children_pids()
    broker = get_broker()
    nul = record_echo.delay("nul-args", "user typed \x00 this")
    poison = {
        "garbage-nul": b"\x00 unsigned garbage \x00",
        "wrong-type": SignedBodyFactory(payload=EnvelopeFactory(id="wrong-type", expires=12345)),
        "deep": SignedBodyFactory(payload=b'{"v":1,"id":"deep","task":"tests.tasks.add","args":' + b"[" * 50_000
                                  + b"]" * 50_000 + b"}"),
    }
    for key, body in list(poison.items()):
        try:
            broker.publish([Outgoing("default", key, body)])
        except (UnicodeDecodeError, DatabaseError):  # the database broker keeps text bodies: refused at publish
            del poison[key]
    began = time.monotonic()
    good = [add.delay(i, i) for i in range(200)]
    assert [r.get(timeout=30) for r in good] == [2 * i for i in range(200)]
    drained = time.monotonic() - began
    assert AsyncResult(nul.id).get(timeout=10) == "user typed \x00 this"
    assert Run.objects.filter(label="nul-args").count() == 1  # ran once
    assert DeadLetter.objects.filter(message_id__in=list(poison)).count() == len(poison)
    assert worker.children_pids() == consumers  # no consumer died, none was replaced
    report("Poison input (NUL arguments, garbage, wrong types, deep nesting) beside 200 tasks",
           sent=200 + 1 + len(poison), lost=0, duplicate_runs=0, failed=0, dead_lettered=len(poison),
           drain_s=drained, consumers_replaced=0)
