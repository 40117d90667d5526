"""The Redis broker's key schema, the one place keys are named, for Python and for the Lua scripts.

Every key sits under the prefix (TASKQUEUE_KEY_PREFIX). A ready message's rank is the time it
became ready (seconds since RANK_EPOCH, so a double tells nanoseconds apart: one producer's messages
keep their order), less `priority x TASKQUEUE_PRIORITY_AGING` seconds: higher priorities go first,
and a low one still runs under a steady flow of high ones. Python builds a key with `key(prefix, name,
part)`; each script in lua/ runs after `lua_prelude()`, which defines `p` (ARGV[1], the prefix),
`rank_epoch` and, for each name below, `<name>_key` (a string) or `<name>_key(part)` (a function).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

LUA = Path(__file__).with_name("lua")
RANK_EPOCH = 1_700_000_000

SCHEMA: dict[str, tuple[str, str]] = {
    # name: (key under the prefix, "{}" for the part that varies; what it holds)
    "msg": ("msg", "hash: message key -> body, while queued, delayed or in flight"),
    "delayed": ("delayed", "sorted set: 'queue\\nkey' scored by eta (epoch seconds)"),
    "queues": ("queues", "set: known queue names, re-added now and then by publishers"),
    "heartbeats": ("heartbeats", "sorted set: consumer id scored by its last lease renewal (server time)"),
    "redeliveries": ("redeliveries", "hash: message key -> times taken back from a silent consumer"),
    "queue": ("ready:{}", "sorted set: ready message keys of a queue by rank"),
    "ranks": ("ranks", "hash: message key -> its rank once ready, while it is delayed"),
    "wake": ("wake:{}", "list: tokens that wake idle consumers of a queue, at most its ready count"),
    "inflight": ("inflight:{}", "hash: what a consumer holds, message key -> 'queue\\nrank'"),
    "cancelled": ("cancelled:{}", "string: a revoked task id's marker, '1' or the signal to stop it with"),
    "published": ("published:{}", "string: an outbox message key the broker got (expires)"),
    "lock": ("lock:{}", "string: the consumer id holding a lock_key mutex"),
}


def key(prefix: str, name: str, part: str = "") -> str:
    pattern = SCHEMA[name][0]
    return f"{prefix}:{pattern.format(part) if '{}' in pattern else pattern}"


def lua_prelude(uses: str | None = None) -> str:
    """The key definitions, only those `uses` (a script's text) names when given: a script builds
    what it defines on every call."""
    lines = ["local p = ARGV[1]", f"local rank_epoch = {RANK_EPOCH}"]
    for name, (pattern, _) in SCHEMA.items():
        if uses is not None and not re.search(rf"\b{name}_key\b", uses):
            continue
        if "{}" in pattern:
            lines.append(f"local function {name}_key(part) return p .. ':{pattern[:-2]}' .. part end")
        else:
            lines.append(f"local {name}_key = p .. ':{pattern}'")
    return "\n".join(lines) + "\n"


def script(name: str) -> str:
    """lua/<name>.lua after the prelude and the functions of lua/common.lua that it calls."""
    body = (LUA / f"{name}.lua").read_text()
    helpers = (LUA / "common.lua").read_text().split("\n\n")[1:]  # after its heading: one function each
    used: list[str] = []
    for _ in helpers:  # a helper may call another
        text = "\n".join([*used, body])
        used = [h for h in helpers if re.search(rf"\b{_defined(h)}\(", text)]
    return lua_prelude(uses="\n".join([*used, body])) + "\n".join(used) + "\n" + body


def _defined(helper: str) -> str:
    match = re.search(r"local function (\w+)", helper)
    if match is None:
        raise ValueError(f"common.lua: every helper defines a local function, not {helper[:40]!r}")
    return match.group(1)


def sha1(text: str) -> str:
    """The name EVALSHA knows a script by."""
    return hashlib.sha1(text.encode()).hexdigest()


def loading_on_noscript[T](send: Callable[[bool], T], load: Callable[[], object],
                           is_noscript: Callable[[Exception], bool]) -> T:
    """`send(True)` runs scripts by EVALSHA. If Redis lost them (restarted, or its script cache
    flushed), `load()` them and `send(False)` once more. Both Redis transports (redis-py in the
    broker, the supervisor's bare socket in leases.py) go through here."""
    try:
        return send(True)
    except Exception as exc:
        if not is_noscript(exc):
            raise
    load()
    return send(False)
