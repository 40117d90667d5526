"""Wake-ups between the processes of one machine, for a database with no notifications of its own
(the database broker on SQLite): the counterpart of `pglisten` without PostgreSQL's NOTIFY.

Each waiting thread binds a Unix datagram socket in a directory named after the database; after
a commit that made messages ready, the publisher sends every socket there the names of their
queues. A waiter binds before it looks at the queues (as a LISTEN comes before the look), so a
ring that comes between its look and its wait is already in its socket. A socket whose process
died refuses the datagram, and the ringer removes it. Where Unix sockets cannot be made, `listen`
says so and the caller keeps polling.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import select
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Container, Iterable

_MAX_DATAGRAM = 4096


class Doorbell:
    def __init__(self, name: str):
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        self.directory = os.path.join(tempfile.gettempdir(), f"taskqueue-{os.getuid()}-{digest}")
        self._local = threading.local()

    def listen(self) -> bool:
        """This thread's socket, bound (once per thread and process); False where none can be."""
        if getattr(self._local, "pid", None) == os.getpid():
            return self._local.sock is not None
        self._local.pid, self._local.sock = os.getpid(), None
        if not hasattr(socket, "AF_UNIX"):
            return False
        path = os.path.join(self.directory, f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if not self._bind(sock, path):
            sock.close()
            return False
        sock.setblocking(False)
        self._local.sock, self._local.path = sock, path
        atexit.register(_remove_if_mine, path, os.getpid())  # a killed process's is removed by the next ring
        return True

    def _bind(self, sock: socket.socket, path: str) -> bool:
        for _ in range(2):  # the last waiter closing may remove the directory between the two calls
            try:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                sock.bind(path)
                return True
            except FileNotFoundError:
                continue
            except OSError:
                return False
        return False

    def wait_for(self, payloads: Container[str], seconds: float) -> bool:
        """Wait up to `seconds` for a ring naming one of `payloads`; False when none came."""
        if not self.listen():
            time.sleep(max(0.0, seconds))
            return False
        sock = self._local.sock
        deadline = time.monotonic() + max(0.0, seconds)
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([sock], [], [], remaining)
            if readable and any(name in payloads for name in self._drain(sock)):
                return True
        return False

    @staticmethod
    def _drain(sock: socket.socket) -> list[str]:
        names: list[str] = []
        while True:
            try:
                names += sock.recv(_MAX_DATAGRAM).decode("utf-8", "replace").split("\n")
            except BlockingIOError:
                return names

    def ring(self, payloads: Iterable[str]) -> None:
        """Tell every waiter on this machine (a full socket already has a ring waiting)."""
        messages = _datagrams(sorted(set(payloads)))
        if not messages or not hasattr(socket, "AF_UNIX"):
            return
        try:
            entries = [entry.path for entry in os.scandir(self.directory) if entry.name.endswith(".sock")]
        except FileNotFoundError:
            return  # nobody has waited yet
        sender = getattr(self._local, "sender", None)
        if sender is None:
            sender = self._local.sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sender.setblocking(False)
        for path in entries:
            for message in messages:
                try:
                    sender.sendto(message, path)
                except ConnectionRefusedError:  # its process is gone
                    _remove(path)
                    break
                except OSError:  # full (BlockingIOError), or removed meanwhile
                    break

    def close(self) -> None:
        sock = getattr(self._local, "sock", None)
        if sock is not None and self._local.pid == os.getpid():
            sock.close()
            _remove(self._local.path)
            try:
                os.rmdir(self.directory)  # the last one out: no empty directories left behind
            except OSError:
                pass
        self._local.sock, self._local.pid = None, None


def _datagrams(names: list[str]) -> list[bytes]:
    """The names, newline-separated, in as few datagrams of at most _MAX_DATAGRAM bytes as fit."""
    datagrams: list[bytes] = []
    current = b""
    for name in names:
        encoded = name.encode()[:_MAX_DATAGRAM]
        if current and len(current) + 1 + len(encoded) > _MAX_DATAGRAM:
            datagrams.append(current)
            current = b""
        current = current + b"\n" + encoded if current else encoded
    return [*datagrams, current] if current else datagrams


def _remove_if_mine(path: str, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child that exits normally: the socket is its parent's
        _remove(path)
        try:
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
