"""The wire protocol: a signed JSON envelope, then one JSON line per remaining chain step
(version 2, see docs/protocol.md).

The only code that knows the wire format. Unknown fields are ignored and missing
ones take their defaults, so older and newer workers can read each other's messages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import operator
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from typing import Any

from . import serialization
from .exceptions import DecodeError

PROTOCOL_VERSION = 2  # 2: the rest of a chain follows the envelope as lines (1: inside it)
_SIGNATURE_LENGTH = 64  # hex digest of HMAC-SHA256


@dataclass(slots=True)
class Message:
    """One task invocation as it travels through the broker (treat it as read-only)."""

    id: str
    task: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    queue: str = "default"
    eta: str | None = None  # ISO 8601, UTC
    expires: str | None = None  # ISO 8601, UTC
    retries: int = 0
    priority: int = 0
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    group_index: int | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    ignore_result: bool = False
    lock: str | None = None  # lock_key value: same value never runs twice at once
    link: list = field(default_factory=list)  # signatures called with the result
    link_error: list = field(default_factory=list)  # signatures called on failure
    chain: Sequence[dict] = field(default_factory=list)  # remaining steps, next one last (as in Celery)
    chord: dict | None = None  # body signature to run when this task's group completes
    headers: dict = field(default_factory=dict)

    @property
    def eta_datetime(self) -> datetime | None:
        return datetime.fromisoformat(self.eta) if self.eta else None

    @property
    def expires_datetime(self) -> datetime | None:
        return datetime.fromisoformat(self.expires) if self.expires else None

    def send_options(self) -> dict[str, Any]:
        """The options that send this same call again (a retry adds its own on top)."""
        options = {name: getattr(self, name) for name in _RESENT}
        options.update(task_id=self.id, retries=self.retries, expires=self.expires_datetime)
        return options


_RESENT = ("queue", "priority", "parent_id", "root_id", "group_id", "group_index", "time_limit",
           "soft_time_limit", "ignore_result", "lock", "link", "link_error", "chain", "chord", "headers")


class ChainSteps(Sequence):
    """The rest of a chain as the JSON lines it travelled as: a step is parsed only when it is
    read, and the rest is sent on as the same lines, so a long chain is not decoded and encoded
    again at every step."""

    __slots__ = ("lines",)

    def __init__(self, lines: list[bytes]):
        self.lines = lines

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ChainSteps(self.lines[index])
        step = serialization.loads(self.lines[index])
        return {**_STEP_DEFAULTS, **step} if type(step) is dict else step

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"ChainSteps({list(self)!r})"


_FIELD_NAMES = frozenset(f.name for f in fields(Message))
_REQUIRED = ("id", "task", "args", "kwargs")
_TRAILING = ("chain",)  # written after the envelope, one line per step
# Fields written only when they differ from their default: most messages carry none of them.
_OPTIONAL = tuple((f.name, f.default if f.default_factory is MISSING else f.default_factory())
                  for f in fields(Message) if f.name not in _REQUIRED + _TRAILING)
_OPTIONAL_DEFAULTS = tuple(default for _, default in _OPTIONAL)
_optional_values = operator.attrgetter(*(name for name, _ in _OPTIONAL))


_keyed_macs: dict[bytes, hmac.HMAC] = {}


def sign(key: bytes, payload: bytes) -> bytes:
    """Hex HMAC-SHA256 of `payload` (messages, and the outcomes carried by notifications)."""
    base = _keyed_macs.get(key)
    if base is None:  # copying a keyed HMAC skips re-deriving the key pads on every message
        base = _keyed_macs[key] = hmac.new(key, digestmod=hashlib.sha256)
    mac = base.copy()
    mac.update(payload)
    return mac.hexdigest().encode("ascii")


def encode(message: Message, key: bytes) -> bytes:
    """Serialise and sign; raises TypeError if args, kwargs or options are not sendable."""
    to_jsonable = serialization.to_jsonable
    steps = _chain_lines(message.chain)
    body = {"v": PROTOCOL_VERSION if steps else 1, "id": message.id, "task": message.task,
            "args": to_jsonable(list(message.args), "args"), "kwargs": to_jsonable(message.kwargs, "kwargs")}
    values = _optional_values(message)
    if values != _OPTIONAL_DEFAULTS:  # one comparison in C for the usual message with none set
        for (name, default), value in zip(_OPTIONAL, values, strict=True):
            if value != default:
                body[name] = to_jsonable(value, name)
    payload = _dumps(body)
    if steps:
        payload = b"\n".join([payload, *steps])
    return sign(key, payload) + b":" + payload


def _dumps(value: Any) -> bytes:
    # Compact JSON never holds a raw newline (json escapes it inside strings): lines can follow.
    try:
        return _encode_json(value).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (text decoded from invalid UTF-8): send it \u-escaped
        return _encode_ascii_json(value).encode("ascii")


# One encoder for all messages: json.dumps with non-default options builds a new one per call.
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_encode_ascii_json = json.JSONEncoder(separators=(",", ":")).encode


def _chain_lines(chain: Sequence[dict]) -> list[bytes]:
    if type(chain) is ChainSteps:  # received, passed on unchanged
        return chain.lines
    return [_dumps(serialization.to_jsonable(_compact_step(step), "chain")) for step in chain]


# A chain step travels without what it would only repeat: its lineage (the worker sends each step
# with the parent and root of the step before it, `continuation._send_links`) and the fields at
# their defaults (put back when the step is read). A long chain's first message is half the size.
_STEP_DEFAULTS: dict[str, Any] = {"kwargs": {}, "subtask_type": None, "immutable": False}
_STEP_LINEAGE = ("root_id", "parent_id")


def _compact_step(step: Any) -> Any:
    if not isinstance(step, dict):
        return step
    compact = {key: value for key, value in step.items()
               if key not in _STEP_DEFAULTS or value != _STEP_DEFAULTS[key]}
    options = compact.get("options")
    if isinstance(options, dict) and any(key in options for key in _STEP_LINEAGE):
        compact["options"] = {key: value for key, value in options.items() if key not in _STEP_LINEAGE}
    return compact


def encode_many(messages: list[Message], key: bytes) -> list[bytes]:
    """Encode several messages (all are checked before any is sent)."""
    return [encode(message, key) for message in messages]


def decode(raw: bytes, key: bytes) -> Message:
    """Verify the signature and rebuild the Message; raises DecodeError with the reason."""
    if not isinstance(raw, bytes):
        raw = str(raw).encode("utf-8")
    signature, sep, payload = raw.partition(b":")
    if not sep or len(signature) != _SIGNATURE_LENGTH:
        raise DecodeError("unsigned message: no HMAC signature in front of the body")
    if not hmac.compare_digest(signature, sign(key, payload)):
        raise DecodeError("forged message: the HMAC signature does not match the body")
    envelope, *steps = payload.split(b"\n")
    try:
        body = serialization.loads(envelope)
    except Exception as exc:  # bad JSON, absurd nesting, a tagged value that does not rebuild
        raise DecodeError(f"malformed body: {type(exc).__name__}: {exc}") from exc
    if steps and isinstance(body, dict):
        if not all(line[:1] == b"{" and line[-1:] == b"}" for line in steps):
            raise DecodeError("malformed body: a chain step line is not a JSON object")
        body["chain"] = ChainSteps(steps)  # each parsed when it becomes the next step
    return from_dict(body)


def from_dict(body: Any) -> Message:
    """Build a Message from a decoded body, defaulting missing fields."""
    if not isinstance(body, dict):
        raise DecodeError(f"malformed body: expected a JSON object, got {type(body).__name__}")
    version = body.get("v", PROTOCOL_VERSION)
    if not isinstance(version, int) or version > PROTOCOL_VERSION:
        raise DecodeError(f"unsupported protocol version {version!r} (this worker reads {PROTOCOL_VERSION})")
    for required in ("id", "task"):
        if not isinstance(body.get(required), str) or not body[required]:
            raise DecodeError(f"malformed body: field {required!r} is missing or not a string")
    if len(body["id"]) > 255 or "\x00" in body["id"]:
        raise DecodeError("malformed body: field 'id' is longer than 255 characters or holds NUL")
    known = {name: value for name, value in body.items() if name in _FIELD_NAMES}
    args, kwargs = known.get("args", ()), known.get("kwargs", {})
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise DecodeError("malformed body: args must be a list and kwargs an object")
    known["args"] = tuple(args)
    if not known.keys() <= _BASIC_FIELDS:  # the usual message has no other field: nothing more to check
        _check_types(known)
    return Message(**known)


_BASIC_FIELDS = frozenset({"id", "task", "args", "kwargs"})
_NONE = type(None)
_NUMBER = (int, float, _NONE)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "queue": (str,), "eta": (str, _NONE), "expires": (str, _NONE), "retries": (int,), "priority": (int,),
    "parent_id": (str, _NONE), "root_id": (str, _NONE), "group_id": (str, _NONE), "group_index": (int, _NONE),
    "time_limit": _NUMBER, "soft_time_limit": _NUMBER, "ignore_result": (bool,), "lock": (str, _NONE),
    "link": (list,), "link_error": (list,), "chain": (list, ChainSteps), "chord": (dict, _NONE), "headers": (dict,),
}


def _check_types(known: dict[str, Any]) -> None:
    """A signed message can still carry a wrong type (a buggy or older producer): refuse it here,
    with the field named, rather than fail later in the middle of running it."""
    for name, value in known.items():
        expected = _FIELD_TYPES.get(name)
        if expected is not None and not isinstance(value, expected):
            raise DecodeError(f"malformed body: field {name!r} is a {type(value).__name__}")
    for name in ("eta", "expires"):
        if known.get(name) is not None:
            try:
                aware = datetime.fromisoformat(known[name]).tzinfo is not None
            except ValueError:
                aware = False
            if not aware:
                raise DecodeError(f"malformed body: field {name!r} is not an ISO 8601 time with an offset")
    for name in ("link", "link_error"):
        if not all(isinstance(item, dict) for item in known.get(name, ())):
            raise DecodeError(f"malformed body: field {name!r} must hold signatures (objects)")


def peek_id(raw: bytes) -> str | None:
    """Best-effort message id of a raw body, for dead-letter records."""
    try:
        return str(json.loads(raw.partition(b":")[2].partition(b"\n")[0])["id"])
    except Exception:
        return None
