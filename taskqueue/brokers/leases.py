"""The lease calls of the Redis broker, for the prefork supervisor, which runs without Django.

The supervisor renews its consumers' leases, requeues what dead ones held and asks which running
tasks were cancelled with terminate: `Broker.leases`. It makes that call over one bare connection
with hiredis packing commands and parsing replies, because importing redis-py would more than double
the supervisor's memory (worker/keeper.py says why). RedisBroker sends the same script with the same
arguments (the helpers below).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .base import Leases
from .keys import key, loading_on_noscript, script, sha1


def leases_args(prefix: str, alive: Sequence[str], requeue: Sequence[str], stale_after: float | None,
                redelivered: bool) -> list:
    return [prefix, "" if stale_after is None else repr(float(stale_after)), "1" if redelivered else "0",
            len(alive), *alive, *requeue]


def needs_script(alive: Sequence[str], requeue: Sequence[str], stale_after: float | None) -> bool:
    return bool(alive or requeue) or stale_after is not None


def cancelled_keys(prefix: str, task_ids: Sequence[str]) -> list[str]:
    return [key(prefix, "cancelled", task_id) for task_id in task_ids]


def terminations_from(task_ids: Sequence[str], markers: list) -> dict[str, str]:
    """The cancel markers of these tasks (MGET replies) that ask for a running task to be stopped:
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
    """`Broker.leases` of a Redis broker, over one bare connection."""

    takes_back_on_disconnect = False  # as RedisBroker

    def __init__(self, url: str, prefix: str, timeout: float = 2.0):
        self.url, self.prefix, self.timeout = url, prefix, timeout
        self._sock: socket.socket | None = None
        self._script = script("leases")
        self._sha = sha1(self._script)

    def leases(self, alive: Sequence[str] = (), *, requeue: Sequence[str] = (), stale_after: float | None = None,
               redelivered: bool = True, running: Sequence[str] = ()) -> Leases:
        requeued = 0
        if needs_script(alive, requeue, stale_after):
            requeued = int(self._run_script(leases_args(self.prefix, alive, requeue, stale_after, redelivered)))
        terminations = terminations_from(running, self._call("MGET", *cancelled_keys(self.prefix, running))) \
            if running else {}
        return Leases(requeued, terminations)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _run_script(self, args: list) -> Any:
        return loading_on_noscript(lambda _first: self._call("EVALSHA", self._sha, 0, *args),
                                   lambda: self._call("SCRIPT", "LOAD", self._script),
                                   lambda exc: isinstance(exc, ReplyError) and str(exc).startswith("NOSCRIPT"))

    def _call(self, *command) -> Any:
        """One command, one reply. A broken connection is dropped and the error raised: the
        supervisor logs it and tries again on its next tick, on a new connection."""
        import hiredis

        try:
            sock = self._sock if self._sock is not None else self._connect()
            return self._roundtrip(hiredis, sock, command)
        except OSError:
            self.close()
            raise

    def _roundtrip(self, hiredis, sock: socket.socket, command: tuple) -> Any:
        sock.sendall(hiredis.pack_command(tuple(_wire(part) for part in command)))
        reader = hiredis.Reader()
        reply = False
        while reply is False:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("Redis closed the connection")
            reader.feed(chunk)
            reply = reader.gets()
        if isinstance(reply, hiredis.ReplyError):
            raise ReplyError(str(reply))
        return reply

    def _connect(self) -> socket.socket:
        import hiredis

        parts = urlsplit(self.url)
        query = parse_qs(parts.query)
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = parts.path
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
            self._roundtrip(hiredis, sock, ("AUTH", *credentials))
        if db and db != "0":
            self._roundtrip(hiredis, sock, ("SELECT", db))
        return sock


def _wire(part: object) -> bytes | str:
    return part if isinstance(part, (bytes, str)) else str(part)
