"""What a consumer is running right now, readable by the supervisor.

A forked or spawned consumer writes its slot into an unlinked temporary file that both processes
map; the keeper (keeper.py) keeps the descriptor across its exec and hands it to a replacement
consumer by number. POSIX record locks keep reads whole.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..brokers.base import Delivery
    from ..message import Message

_SIZE = 65536
_HEADER = 4  # length of the data that follows, big-endian


class TaskSlot:
    """The current delivery of one consumer, with its start time and hard limit."""

    def __init__(self, shared: bool, fd: int | None = None):
        self.fd: int | None = None
        self._map: mmap.mmap | None = None
        self._local: bytes = b""
        if shared or fd is not None:
            if fd is None:
                import tempfile  # not at import: the keeper only maps slots it was handed

                with tempfile.TemporaryFile() as file:  # unlinked: gone when the last process closes it
                    fd = os.dup(file.fileno())
                os.ftruncate(fd, _SIZE)
            self.fd = fd
            self._map = mmap.mmap(fd, _SIZE)

    def shared_fd(self) -> int:
        """The descriptor of a shared slot's file (what another process maps)."""
        if self.fd is None:
            raise ValueError("this slot is not shared: it has no file")
        return self.fd

    def begin(self, delivery: Delivery | None, message: Message) -> None:
        if delivery is None:
            return
        head = json.dumps({"key": delivery.key, "queue": delivery.queue, "consumer": delivery.consumer_id,
                           "task": message.task, "id": message.id, "started": time.time(),
                           "limit": message.time_limit}).encode()
        data = head + b"\n" + (delivery.body if len(head) + len(delivery.body) < _SIZE - _HEADER - 1 else b"")
        self._write(data)

    def end(self) -> None:
        self._write(b"")

    def read(self) -> tuple[dict, bytes] | None:
        if self._map is None:
            data = self._local
        else:
            with self._locked():
                size = int.from_bytes(self._map[:_HEADER], "big")
                data = self._map[_HEADER:_HEADER + size]
        if not data:
            return None
        head, _, body = data.partition(b"\n")
        try:
            return json.loads(head), body
        except ValueError:  # written by a process killed mid-write
            return None

    def close(self) -> None:
        if self._map is not None and self.fd is not None:  # both set, or neither
            self._map.close()
            os.close(self.fd)
            self._map = self.fd = None

    def _write(self, data: bytes) -> None:
        if self._map is None:
            self._local = data
            return
        with self._locked():
            self._map[:_HEADER + len(data)] = len(data).to_bytes(_HEADER, "big") + data

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """A record lock on the slot file: per process, so it also excludes a forked sibling."""
        fd: int = self.fd  # type: ignore[assignment]  # only a shared slot, which has its file, locks
        fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)
