"""Pure codecs of stored outcomes: the Outcome of one execution, exceptions to and from JSON, the
value a row holds, and the signed notice that carries a small outcome to its waiter.

No database and no broker here: `store` writes what these produce, `result` reads it back.
"""

from __future__ import annotations

import hmac
import importlib
import json
import traceback as tb_module
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from . import serialization, states
from .conf import get_settings
from .exceptions import TaskError, printable, raisable
from .message import Message, sign


@dataclass
class Outcome:
    """What one execution produced, ready to be stored."""

    message: Message
    state: str
    result: Any = None  # the return value, or the exception
    traceback: str | None = None
    hostname: str = ""
    started: datetime | None = None
    retries: int | None = None  # retries count to store (RETRY stores the next attempt's number)
    next_attempt: tuple | None = None  # (args, kwargs, options) of the retry to send
    encoded: Any = None  # the result already turned into JSON types (checked in the worker)
    signum: int | None = None  # revoked with terminate: the signal the revoke asked for


def exception_to_json(exc: BaseException) -> dict:
    """A portable description of an exception, enough to re-raise it in the caller."""
    cls = type(exc)
    try:
        args = serialization.to_jsonable(list(exc.args))
    except Exception:  # args that cannot be sent, or an `args` that raises
        args = [printable(exc)]
    data = {"exc_type": cls.__qualname__, "exc_module": cls.__module__, "exc_message": args}
    notes = getattr(exc, "__notes__", None)
    if notes and isinstance(notes, list):
        data["exc_notes"] = [printable(note) for note in notes]
    return data


def exception_from_json(data: dict) -> BaseException:
    """Rebuild an exception stored by `exception_to_json` (TaskError if its class is unknown)."""
    args = serialization.from_jsonable(data.get("exc_message") or [])
    try:
        cls: Any = importlib.import_module(data["exc_module"])
        for part in data["exc_type"].split("."):
            cls = getattr(cls, part)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            exc = cls(*args)
        else:
            raise TypeError(data["exc_type"])
    except Exception:
        exc = TaskError(data.get("exc_type", "Exception"), " ".join(map(str, args)))
    for note in data.get("exc_notes") or []:
        exc.add_note(note)
    return raisable(exc)


def format_traceback(exc: BaseException) -> str:
    return "".join(tb_module.format_exception(type(exc), exc, exc.__traceback__))


def encode_value(value: Any) -> Any:
    """The value in JSON types, detached from the task's own objects: a worker stores the outcomes
    of a batch when it flushes, after later tasks of the batch may have changed what this one
    returned (a list kept in a module, say)."""
    try:
        encoded = serialization.to_jsonable(value, "return value")
    except TypeError as exc:
        if not is_result(value):
            raise TypeError(f"the task returned a value that cannot be stored: {exc}") from None
        # A returned AsyncResult or GroupResult is stored as its tuple form, as Celery stores it
        # with any serializer but pickle: get() gives the tuple, result_from_tuple() the result.
        return serialization.to_jsonable(value.as_tuple(), "return value")
    if type(encoded) in (list, dict):
        encoded = json.loads(json.dumps(encoded))  # a deep copy of plain JSON data, in C
    return encoded


def is_result(value: Any) -> bool:
    """An AsyncResult or GroupResult (told by shape: `result` sits above this module)."""
    return callable(getattr(value, "as_tuple", None)) and callable(getattr(value, "ready", None))


def value_of(row: Any) -> Any:
    """What a stored row (or a carried outcome) means to the caller: the return value, the
    exception of a failure, or the meta of a custom state."""
    if row is None:
        return None
    if row.state in states.EXCEPTION_STATES and isinstance(row.result, dict) and "exc_type" in row.result:
        return exception_from_json(row.result)
    if row.state in states.READY_STATES:
        return serialization.from_jsonable(row.result)
    if row.meta is not None:
        return serialization.from_jsonable(row.meta)
    return None


_NOTICE_LIMIT = 4096  # bytes; a larger outcome is read from the database by the waiter
_compact_json = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per json.dumps


def notices(rows: list[dict[str, Any]]) -> dict[str, bytes]:
    """Signed outcomes of the finished rows, small enough to ride on their notification."""
    key = get_settings().signing_key
    found = {}
    for row in rows:
        if row["state"] in states.READY_STATES:
            body = _compact_json([row["state"], row["result"], row["traceback"]]).encode()
            if len(body) <= _NOTICE_LIMIT:
                task_id = row["task_id"]
                found[task_id] = sign(key, task_id.encode() + b"|" + body) + b":" + body
    return found


class CarriedOutcome(NamedTuple):
    """The outcome a notification carried: what `get()` reads of a row, without building a model
    instance (a fifth of the waiter's own time)."""

    state: str
    result: Any
    traceback: str | None
    meta: Any = None


def from_notice(task_id: str, data: bytes) -> CarriedOutcome | None:
    """The outcome a notification carried, or None if it carried none or is forged."""
    signature, sep, body = data.partition(b":")
    if not sep or not hmac.compare_digest(signature, sign(get_settings().signing_key,
                                                          task_id.encode() + b"|" + body)):
        return None
    state, result, traceback = json.loads(body)
    return CarriedOutcome(state, result, traceback)
