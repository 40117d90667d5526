"""What a consumer is running right now, readable by the supervisor (shared memory for children)."""

from __future__ import annotations

import json
import multiprocessing
import time

from ..brokers import Delivery
from ..message import Message

_SIZE = 65536


class TaskSlot:
    """The current delivery of one consumer, with its start time and hard limit."""

    def __init__(self, shared: bool):
        self._buffer = multiprocessing.Array("c", _SIZE) if shared else None
        self._local: bytes = b""

    def begin(self, delivery: Delivery | None, message: Message) -> None:
        if delivery is None:
            return
        head = json.dumps({"key": delivery.key, "queue": delivery.queue, "consumer": delivery.consumer_id,
                           "task": message.task, "id": message.id, "started": time.time(),
                           "limit": message.time_limit}).encode()
        data = head + b"\n" + (delivery.body if len(head) + len(delivery.body) < _SIZE - 2 else b"")
        self._write(data)

    def end(self) -> None:
        self._write(b"")

    def read(self) -> tuple[dict, bytes] | None:
        if self._buffer is None:
            data = self._local
        else:
            with self._buffer.get_lock():
                data = self._buffer.raw.partition(b"\x00")[0]
        if not data:
            return None
        head, _, body = data.partition(b"\n")
        return json.loads(head), body

    def _write(self, data: bytes) -> None:
        if self._buffer is None:
            self._local = data
            return
        with self._buffer.get_lock():
            self._buffer[: len(data) + 1] = data + b"\x00"  # JSON never contains NUL
