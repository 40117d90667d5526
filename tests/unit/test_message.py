import json
from decimal import Decimal

import pytest

from taskqueue.exceptions import DecodeError
from taskqueue.message import Message, decode, encode, peek_id

KEY = b"k" * 32


def test_round_trip_keeps_every_field():
    msg = Message(id="abc", task="t.add", args=(1, Decimal("2")), kwargs={"x": (1, 2)}, queue="q",
                  retries=2, parent_id="p", root_id="r", link=[{"task": "t.cb"}], headers={"h": 1})
    assert decode(encode(msg, KEY), KEY) == msg


def test_forged_and_unsigned_messages_are_refused():
    raw = encode(Message(id="abc", task="t.add", args=(1, 2)), KEY)
    with pytest.raises(DecodeError, match="forged"):
        decode(raw.replace(b"[1,2]", b"[1,3]"), KEY)
    with pytest.raises(DecodeError, match="forged"):
        decode(raw, b"other-key")
    with pytest.raises(DecodeError, match="unsigned"):
        decode(raw.partition(b":")[2], KEY)


def test_malformed_body_and_unknown_fields():
    import hashlib
    import hmac

    def signed(payload: bytes) -> bytes:
        return hmac.new(KEY, payload, hashlib.sha256).hexdigest().encode() + b":" + payload

    with pytest.raises(DecodeError, match="malformed"):
        decode(signed(b"{not json"), KEY)
    with pytest.raises(DecodeError, match="'task'"):
        decode(signed(b'{"id": "x"}'), KEY)
    with pytest.raises(DecodeError, match="protocol version"):
        decode(signed(b'{"v": 99, "id": "x", "task": "t"}'), KEY)
    msg = decode(signed(json.dumps({"v": 1, "id": "x", "task": "t", "future_field": 1}).encode()), KEY)
    assert msg.task == "t" and msg.args == ()


def test_peek_id():
    assert peek_id(encode(Message(id="the-id", task="t"), KEY)) == "the-id"
    assert peek_id(b"garbage") is None
