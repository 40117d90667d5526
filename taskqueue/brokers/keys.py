"""The Redis broker's key schema, the one place keys are named, for Python and for the Lua scripts.

Every key sits under the prefix (TASKQUEUE_KEY_PREFIX). A ready message's rank is the server time
it became ready, less `priority x TASKQUEUE_PRIORITY_AGING` seconds: higher priorities go first, and
a low one still runs under a steady flow of high ones. Python builds a key with `key(prefix, name,
part)`; each script in lua/ runs after `lua_prelude()`, which defines `p` (ARGV[1], the prefix) and,
for each name below, `<name>_key` (a string) or `<name>_key(part)` (a function).
"""

from __future__ import annotations

from pathlib import Path

LUA = Path(__file__).with_name("lua")

SCHEMA: dict[str, tuple[str, str]] = {
    # name: (key under the prefix, "{}" for the part that varies; what it holds)
    "msg": ("msg", "hash: message key -> body, while queued, delayed or in flight"),
    "delayed": ("delayed", "sorted set: 'queue\\nkey' scored by eta (epoch seconds)"),
    "queues": ("queues", "set: known queue names, re-added now and then by publishers"),
    "heartbeats": ("heartbeats", "sorted set: consumer id scored by its last lease renewal (server time)"),
    "redeliveries": ("redeliveries", "hash: message key -> times taken back from a silent consumer"),
    "queue": ("ready:{}", "sorted set: ready messages of a queue, '<16 hex digits of seq><key>' by rank"),
    "seq": ("seq", "counter: orders the messages of one rank (FIFO)"),
    "offsets": ("offsets", "hash: message key -> seconds its priority puts it ahead (only if not 0)"),
    "wake": ("wake:{}", "list: tokens that wake idle consumers of a queue, at most its ready count"),
    "inflight": ("inflight:{}", "hash: what a consumer holds, message key -> 'queue\\nrank\\nmember'"),
    "cancelled": ("cancelled:{}", "string: a revoked task id's marker, '1' or the signal to stop it with"),
    "published": ("published:{}", "string: an outbox message key the broker got (expires)"),
    "lock": ("lock:{}", "string: the consumer id holding a lock_key mutex"),
}


def key(prefix: str, name: str, part: str = "") -> str:
    pattern = SCHEMA[name][0]
    return f"{prefix}:{pattern.format(part) if '{}' in pattern else pattern}"


def lua_prelude() -> str:
    lines = ["local p = ARGV[1]"]
    for name, (pattern, _) in SCHEMA.items():
        if "{}" in pattern:
            lines.append(f"local function {name}_key(part) return p .. ':{pattern[:-2]}' .. part end")
        else:
            lines.append(f"local {name}_key = p .. ':{pattern}'")
    return "\n".join(lines) + "\n"


def script(name: str) -> str:
    """The text of lua/<name>.lua, after the prelude and lua/common.lua."""
    return lua_prelude() + (LUA / "common.lua").read_text() + (LUA / f"{name}.lua").read_text()
