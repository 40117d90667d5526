import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from taskqueue.exceptions import DecodeError
from taskqueue.message import ChainSteps, decode, encode, peek_id
from tests.factories import MessageFactory, signed

KEY = b"k" * 32


def test_round_trip_keeps_every_field():
    msg = MessageFactory(id="abc", task="t.add", args=(1, Decimal("2")), kwargs={"x": (1, 2)}, queue="q",
                  retries=2, parent_id="p", root_id="r", link=[{"task": "t.cb"}], headers={"h": 1})
    assert decode(encode(msg, KEY), KEY) == msg


def test_forged_and_unsigned_messages_are_refused():
    raw = encode(MessageFactory(id="abc", task="t.add", args=(1, 2)), KEY)
    with pytest.raises(DecodeError, match="forged"):
        decode(raw.replace(b"[1,2]", b"[1,3]"), KEY)
    with pytest.raises(DecodeError, match="forged"):
        decode(raw, b"other-key")
    with pytest.raises(DecodeError, match="unsigned"):
        decode(raw.partition(b":")[2], KEY)


def _signed(payload: bytes) -> bytes:
    return signed(payload, KEY)


def test_malformed_body_and_unknown_fields():
    with pytest.raises(DecodeError, match="malformed"):
        decode(_signed(b"{not json"), KEY)
    with pytest.raises(DecodeError, match="'task'"):
        decode(_signed(b'{"id": "x"}'), KEY)
    with pytest.raises(DecodeError, match="protocol version"):
        decode(_signed(b'{"v": 99, "id": "x", "task": "t"}'), KEY)
    msg = decode(_signed(json.dumps({"v": 1, "id": "x", "task": "t", "future_field": 1}).encode()), KEY)
    assert msg.task == "t" and msg.args == ()


def test_the_rest_of_a_chain_travels_as_lines_and_is_passed_on_without_being_encoded_again():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    steps = [{"task": "t.last", "args": [(1, 2)], "kwargs": {}, "options": {}, "subtask_type": None,
              "immutable": False},
             {"task": "t.next", "args": [when], "kwargs": {"d": Decimal("1.5")}, "options": {"task_id": "n"},
              "subtask_type": None, "immutable": True}]
    raw = encode(MessageFactory(id="first", task="t.add", args=(1, 1), chain=steps), KEY)
    envelope, *lines = raw.partition(b":")[2].split(b"\n")
    assert json.loads(envelope)["v"] == 2 and "chain" not in json.loads(envelope) and len(lines) == 2
    received = decode(raw, KEY)
    assert type(received.chain) is ChainSteps and received.chain == steps
    assert received.chain[-1]["args"] == [when] and received.chain[-1]["kwargs"] == {"d": Decimal("1.5")}
    assert received.chain[0]["args"] == [(1, 2)]  # tagged values restored when a step is read
    sent_on = encode(MessageFactory(id="n", task="t.next", chain=received.chain[:-1]), KEY)
    assert sent_on.partition(b":")[2].split(b"\n")[1:] == lines[:1]  # the same bytes, not re-encoded
    assert decode(sent_on, KEY).chain == steps[:1]


def test_messages_without_a_chain_stay_version_1_and_version_1_chains_are_read():
    assert json.loads(encode(MessageFactory(id="a", task="t"), KEY).partition(b":")[2])["v"] == 1
    step = {"task": "t.next", "args": [1], "kwargs": {}, "options": {}}
    old = decode(_signed(json.dumps({"v": 1, "id": "a", "task": "t", "chain": [step]}).encode()), KEY)
    assert list(old.chain) == [step]
    with pytest.raises(DecodeError, match="chain step"):
        decode(_signed(b'{"v":2,"id":"a","task":"t"}\n{"task":"t.next"'), KEY)


def test_peek_id():
    assert peek_id(encode(MessageFactory(id="the-id", task="t"), KEY)) == "the-id"
    assert peek_id(encode(MessageFactory(id="chained", task="t", chain=[{"task": "t.b"}]), KEY)) == "chained"
    assert peek_id(b"garbage") is None


@pytest.mark.parametrize("fields", [
    {"expires": 12345}, {"eta": [None]}, {"eta": "2026-01-01T00:00:00"}, {"retries": "1"}, {"link": ["x"]},
    {"args": [], "kwargs": {}, "queue": None}, {"chord": []},
])
def test_a_signed_message_with_a_field_of_the_wrong_type_is_refused(fields):
    """Found by tests/unit/test_decoder_fuzz.py: without args and kwargs, a bad field went unchecked."""
    with pytest.raises(DecodeError, match="malformed body"):
        decode(_signed(json.dumps({"v": 1, "id": "a", "task": "t", **fields}).encode()), KEY)


def test_text_that_utf8_cannot_encode_is_sent_escaped_and_comes_back():
    received = decode(encode(MessageFactory(id="s", task="t", args=("bytes \udcff read as text", "\x00")), KEY), KEY)
    assert received.args == ("bytes \udcff read as text", "\x00")


def test_a_chain_step_travels_without_its_lineage_and_defaults():
    """The worker sends each step with the lineage of the step before it, and a signature's
    defaults are put back when a step is read: neither travels (a 100-step chain's first message
    went from 25 KB to 10 KB)."""
    step = {"task": "t.next", "args": [1], "kwargs": {}, "subtask_type": None, "immutable": False,
            "options": {"task_id": "n", "root_id": "r", "parent_id": "p", "queue": "q"}}
    raw = encode(MessageFactory(id="first", task="t.add", chain=[step]), KEY)
    line = raw.partition(b":")[2].split(b"\n")[1]
    assert json.loads(line) == {"task": "t.next", "args": [1], "options": {"task_id": "n", "queue": "q"}}
    assert decode(raw, KEY).chain[0] == {"task": "t.next", "args": [1], "kwargs": {}, "subtask_type": None,
                                         "immutable": False, "options": {"task_id": "n", "queue": "q"}}
