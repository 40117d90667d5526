"""JSON with tagged extras: datetime, date, time, Decimal, UUID, bytes and tuples round-trip.

Anything else raises TypeError at encode time, in the caller, before anything is sent.
A tagged value is a one-key object: {"__tq__": [tag, payload]}.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

TAG = "__tq__"
_PLAIN = (str, int, float, bool, type(None))


# (type, tag, encode); datetime before date, its base class
_TAGGED: tuple[tuple[Any, str, Callable[[Any], Any] | None], ...] = (
    (tuple, "tuple", None),
    (datetime, "datetime", datetime.isoformat),
    (date, "date", date.isoformat),
    (time, "time", time.isoformat),
    (Decimal, "decimal", str),
    (UUID, "uuid", str),
    ((bytes, bytearray, memoryview), "bytes", lambda v: base64.b64encode(bytes(v)).decode("ascii")),
)


def to_jsonable(value: Any, path: str = "value") -> Any:
    """Return `value` as plain JSON types, tagging the extras; TypeError names the bad path."""
    try:
        return _jsonable(value)
    except TypeError:
        return _jsonable_explained(value, path)  # walk again, naming where the bad value is


def _jsonable(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list:
        return _jsonable_list(value)
    if kind is dict:
        return _jsonable_dict(value)
    for types, tag, encode in _TAGGED:
        if isinstance(value, types):
            if encode is None:
                return {TAG: [tag, [_jsonable(item) for item in value]]}
            return {TAG: [tag, encode(value)]}
    if isinstance(value, (list, dict, str, int, float)):  # subclasses of the plain types
        return _jsonable(_as_base_type(value))
    raise TypeError(kind)


# Containers are copied only where something inside them is tagged: a chain step re-sends the
# remaining steps, plain dicts holding lists and dicts, and walks them without copying.
def _jsonable_list(value: list) -> list:
    copied = None
    for index, item in enumerate(value):
        if type(item) not in _PLAIN and (new := _jsonable(item)) is not item:
            if copied is None:
                copied = list(value)
            copied[index] = new
    return value if copied is None else copied


def _jsonable_dict(value: dict) -> dict:
    copied = None
    for key, item in value.items():
        if type(key) is not str:
            _key(key, "value")  # raises TypeError
        if type(item) not in _PLAIN and (new := _jsonable(item)) is not item:
            if copied is None:
                copied = dict(value)
            copied[key] = new
    return value if copied is None else copied


def _jsonable_explained(value: Any, path: str) -> Any:
    """Slow twin of _jsonable that carries the path, used only to word the error."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list:
        return [_jsonable_explained(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if kind is dict:
        return {_key(key, path): _jsonable_explained(item, f"{path}[{key!r}]") for key, item in value.items()}
    for types, tag, encode in _TAGGED:
        if isinstance(value, types):
            if encode is None:
                return {TAG: [tag, [_jsonable_explained(item, f"{path}[{i}]") for i, item in enumerate(value)]]}
            return {TAG: [tag, encode(value)]}
    if isinstance(value, (list, dict, str, int, float)):
        return _jsonable_explained(_as_base_type(value), path)
    raise TypeError(
        f"{path} is a {kind.__module__}.{kind.__qualname__}, which taskqueue cannot send: "
        "use JSON types, datetime, date, time, Decimal, UUID, bytes or tuples (pass model ids, not models)"
    )


def _key(key: Any, path: str) -> str:
    if type(key) is not str:
        raise TypeError(f"{path} has a non-string key {key!r}: JSON object keys must be str")
    return key


def _as_base_type(value: Any) -> Any:
    base: Any
    for base in (bool, int, float, str, list, dict):
        if isinstance(value, base):
            return base(value)
    return value


_DECODERS = {
    "tuple": lambda v: tuple(v),
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "decimal": Decimal,
    "uuid": UUID,
    "bytes": lambda v: base64.b64decode(v),
    "str": lambda v: v.encode("ascii").decode("unicode_escape"),
}


def _object_hook(obj: dict) -> Any:
    if len(obj) == 1 and TAG in obj:
        tag, payload = obj[TAG]
        return _DECODERS[tag](payload)
    return obj


def storable(value: Any) -> Any:
    """A JSON value that PostgreSQL's jsonb accepts: a string holding NUL or a lone surrogate (text
    decoded from invalid UTF-8) becomes a tagged, escaped string that `from_jsonable` restores.
    Object keys cannot be tagged: such a key is stored escaped, and comes back escaped."""
    kind = type(value)
    if kind is str:
        return value if _storable_text(value) else {TAG: ["str", value.encode("unicode_escape").decode("ascii")]}
    if kind is list:
        return [storable(item) for item in value]
    if kind is dict:
        return {(key if _storable_text(key) else escape_text(key)): storable(item) for key, item in value.items()}
    return value


def _storable_text(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape_text(text: str) -> str:
    """Text a database column accepts: NUL and lone surrogates written as backslash escapes (for
    display: tracebacks, reasons, raw bodies; not reversible)."""
    if _storable_text(text):
        return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def dumps(value: Any) -> str:
    """Encode to a compact JSON string; raises TypeError for unsupported values."""
    return json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False)


_TAG_MARK = f'"{TAG}"'
_TAG_MARK_BYTES = _TAG_MARK.encode()


def loads(text: str | bytes) -> Any:
    """Decode what `dumps` produced, restoring the tagged types (a text without a tag is parsed
    without calling back into Python for every object)."""
    if (_TAG_MARK_BYTES not in text) if isinstance(text, bytes) else (_TAG_MARK not in text):
        return json.loads(text)
    return json.loads(text, object_hook=_object_hook)


def from_jsonable(value: Any) -> Any:
    """Restore tagged values inside an already-parsed JSON structure (e.g. a JSONField)."""
    if type(value) is dict:
        restored = {key: from_jsonable(item) for key, item in value.items()}
        return _object_hook(restored)
    if type(value) is list:
        return [from_jsonable(item) for item in value]
    return value
