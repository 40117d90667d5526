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
