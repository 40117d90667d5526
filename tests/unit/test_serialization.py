from datetime import UTC, date, datetime, time
from decimal import Decimal
from uuid import uuid4

import pytest

from taskqueue import serialization


def test_extras_round_trip():
    value = {
        "when": datetime(2024, 5, 1, 12, 30, tzinfo=UTC), "day": date(2024, 5, 1),
        "at": time(8, 15, 30), "price": Decimal("10.25"), "id": uuid4(), "raw": b"\x00\xffdata",
        "pair": (1, (2, "x")), "nested": [{"t": (1,)}], "plain": [1, 2.5, "s", None, True],
    }
    assert serialization.loads(serialization.dumps(value)) == value
    assert isinstance(serialization.loads(serialization.dumps(value))["pair"][1], tuple)


def test_unsupported_value_names_its_path():
    with pytest.raises(TypeError, match=r"value\[0\]\['obj'\] is a builtins.object"):
        serialization.dumps([{"obj": object()}])


def test_non_string_keys_are_refused():
    with pytest.raises(TypeError, match="non-string key"):
        serialization.dumps({1: "a"})


def test_from_jsonable_restores_tags_inside_parsed_json():
    import json

    parsed = json.loads(serialization.dumps({"d": Decimal("1.5")}))
    assert serialization.from_jsonable(parsed) == {"d": Decimal("1.5")}


def test_only_containers_holding_a_tagged_value_are_copied():
    steps = [{"task": "add", "args": [1], "kwargs": {}, "options": {"task_id": "x"}} for _ in range(3)]
    assert serialization.to_jsonable(steps) is steps  # plain JSON (a chain's remaining steps): no copy
    steps[1]["kwargs"] = {"when": date(2024, 5, 1)}
    encoded = serialization.to_jsonable(steps)
    assert encoded is not steps and encoded[0] is steps[0] and encoded[2] is steps[2]
    assert encoded[1]["kwargs"] == {"when": {"__tq__": ["date", "2024-05-01"]}}
    assert steps[1]["kwargs"] == {"when": date(2024, 5, 1)}  # the caller's value is left alone
    with pytest.raises(TypeError, match="non-string key"):
        serialization.to_jsonable([{"a": [1]}, {2: "b"}])


def test_text_without_tags_and_tag_lookalikes_decode_the_same():
    assert serialization.loads(b'{"a":[1,{"b":null}]}') == {"a": [1, {"b": None}]}
    tricky = {"text": '"__tq__"', "__tq__ext": 1, "pair": (1, 2)}
    assert serialization.loads(serialization.dumps(tricky)) == tricky
    assert serialization.loads(serialization.dumps({"text": '"__tq__"'})) == {"text": '"__tq__"'}
