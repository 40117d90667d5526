"""The lease calls of the Redis broker, for the prefork supervisor, which runs without Django.

The supervisor renews its consumers' leases and requeues what dead ones held: three calls. It
makes them over one bare connection with hiredis packing commands and parsing replies, because
importing redis-py would more than double the supervisor's memory (worker/keeper.py says why).
RedisBroker sends the same scripts with the same arguments (the *_args helpers below).
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

LUA = Path(__file__).with_name("lua")


def heartbeat_args(prefix: str, consumer_ids: list[str]) -> list:
    return [prefix, *consumer_ids]


def recover_args(prefix: str, stale_after: float, consumer_ids: list[str] | None, redelivered: bool = True) -> list:
    return [prefix, repr(float(stale_after)), "1" if redelivered else "0", *(consumer_ids or [])]


def heartbeats_key(prefix: str) -> str:
    return f"{prefix}:heartbeats"


def cancelled_key(prefix: str, task_id: str) -> str:
    return f"{prefix}:cancelled:{task_id}"


def terminations_from(task_ids: list[str], markers: list) -> dict[str, str]:
    """The revoke markers of these tasks (MGET replies) that ask for a running task to be stopped:
    a plain revoke is b"1", a terminating one the signal's name."""
    return {task_id: marker.decode() for task_id, marker in zip(task_ids, markers, strict=True)
            if marker and marker != b"1"}


def bare_connection_supported(url: str) -> bool:
    """redis:// and unix:// URLs; TLS (rediss://) stays with redis-py."""
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return False
    return urlsplit(url).scheme in ("redis", "unix")


class ReplyError(Exception):
    """Redis answered a command with an error."""


class RedisLeases:
    """heartbeat, recover and forget_consumer of a Redis broker, over one bare connection."""

    def __init__(self, url: str, prefix: str, timeout: float = 2.0):
        self.url, self.prefix, self.timeout = url, prefix, timeout
        self._sock: socket.socket | None = None
        self._scripts = {name: (LUA / f"{name}.lua").read_text() for name in ("heartbeat", "recover")}
        self._shas: dict[str, bytes] = {}

    def heartbeat(self, consumer_ids: list[str]) -> None:
        if consumer_ids:
            self._script("heartbeat", heartbeat_args(self.prefix, consumer_ids))

    def recover(self, stale_after: float, consumer_ids: list[str] | None = None, *, redelivered: bool = True) -> int:
        return int(self._script("recover", recover_args(self.prefix, stale_after, consumer_ids, redelivered)))

    def forget_consumer(self, consumer_id: str) -> None:
        self._call("ZREM", heartbeats_key(self.prefix), consumer_id)

    def terminations(self, task_ids: list[str]) -> dict[str, str]:
        if not task_ids:
            return {}
        return terminations_from(task_ids, self._call("MGET", *[cancelled_key(self.prefix, i) for i in task_ids]))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _script(self, name: str, args: list) -> object:
        sha = self._shas.get(name)
        if sha is not None:
            try:
                return self._call("EVALSHA", sha, 0, *args)
            except ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
        self._shas[name] = self._call("SCRIPT", "LOAD", self._scripts[name])
        return self._call("EVALSHA", self._shas[name], 0, *args)

    def _call(self, *command) -> object:
        """One command, one reply. A broken connection is dropped and the error raised: the
        supervisor logs it and tries again on its next tick, on a new connection."""
        import hiredis

        try:
            if self._sock is None:
                self._connect()
            return self._roundtrip(hiredis, command)
        except OSError:
            self.close()
            raise

    def _roundtrip(self, hiredis, command: tuple) -> object:
        self._sock.sendall(hiredis.pack_command(tuple(_wire(part) for part in command)))
        reader = hiredis.Reader()
        reply = False
        while reply is False:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("Redis closed the connection")
            reader.feed(chunk)
            reply = reader.gets()
        if isinstance(reply, hiredis.ReplyError):
            raise ReplyError(str(reply))
        return reply

    def _connect(self) -> None:
        import hiredis

        parts = urlsplit(self.url)
        query = parse_qs(parts.query)
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: object = parts.path
            db = query.get("db", ["0"])[0]
        else:
            sock = socket.socket(socket.AF_INET6 if ":" in (parts.hostname or "") else socket.AF_INET)
            address = (parts.hostname or "localhost", parts.port or 6379)
            db = parts.path.strip("/") or query.get("db", ["0"])[0]
        sock.settimeout(self.timeout)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        if parts.password is not None:
            credentials = [unquote(parts.username), unquote(parts.password)] if parts.username else \
                [unquote(parts.password)]
            self._roundtrip(hiredis, ("AUTH", *credentials))
        if db and db != "0":
            self._roundtrip(hiredis, ("SELECT", db))


def _wire(part: object) -> bytes | str:
    return part if isinstance(part, (bytes, str)) else str(part)
