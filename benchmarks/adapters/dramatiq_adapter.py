"""Dramatiq: Redis broker and Redis results backend, `dramatiq --processes 2 --threads 1`.

One thread per process gives the same concurrency (2) as the other systems (`--processes 8` in the
mixed load; Dramatiq's default queue prefetch is twice the threads, so 2 messages per process).
`get_result(block=True)` waits with BRPOPLPUSH. Dramatiq's group completion callbacks do not
receive the members' results, so there is no chord equivalent and that scenario is reported as not
applicable.
"""

from __future__ import annotations

from typing import Any

from ..common import HUEY_DRAMATIQ_REDIS_DB, WorkerGroup, count_existing_keys, delete_redis_keys, python
from .base import Adapter


class DramatiqAdapter(Adapter):
    name = "dramatiq"
    description = "Dramatiq, Redis broker + Redis results, --processes 2 --threads 1"

    def setup(self) -> None:
        from ..peers import dramatiq_app

        self.app = dramatiq_app
        self.result_keys: set[str] = set()  # result keys are hashes, outside the namespace: deleted one by one
        self.teardown()  # leftovers of an interrupted run (result keys also expire after Dramatiq's 10 min TTL)

    def _key(self, message) -> str:
        key = self.app.backend.build_message_key(message)
        self.result_keys.add(key)
        return key

    def worker_group(self, processes: int = 2) -> WorkerGroup:
        cmd = [python(), "-m", "dramatiq", "benchmarks.peers.dramatiq_app", "--processes", str(processes),
               "--threads", "1"]
        return WorkerGroup(self.name, cmd)

    def io_worker_group(self, concurrency: int) -> WorkerGroup:
        cmd = [python(), "-m", "dramatiq", "benchmarks.peers.dramatiq_app", "--processes", "1",
               "--threads", str(concurrency)]
        return WorkerGroup(self.name, cmd)

    def reset_results(self) -> None:
        self._delete_results()

    def _delete_results(self) -> None:
        keys = list(self.result_keys)
        for i in range(0, len(keys), 1000):
            self.app.backend.client.delete(*keys[i:i + 1000])
        self.result_keys.clear()

    def enqueue(self, n: int) -> list[str]:
        add = self.app.add
        return [self._key(add.send(i, i)) for i in range(n)]

    def count_done(self, keys: list[str]) -> int:
        return count_existing_keys(self.app.backend.client, keys)

    def round_trip(self, i: int) -> None:
        message = self.app.add.send(i, i)
        self._key(message)
        assert message.get_result(block=True, timeout=10_000) == 2 * i

    def run_chain(self, n: int) -> int:
        add = self.app.add
        pipe = self.app.dramatiq.pipeline([add.message(0, 1), *[add.message(1) for _ in range(n - 1)]]).run()
        for message in pipe.messages:
            self._key(message)
        return pipe.get_result(block=True, timeout=300_000)

    def enqueue_slow(self, seconds: float) -> Any:
        message = self.app.slow.send(seconds)
        self._key(message)
        return message

    def wait_slow(self, handles: list[Any], timeout: float) -> None:
        self.wait_each(handles, timeout,
                       lambda message, left: message.get_result(block=True, timeout=max(1, int(left * 1000))))

    def teardown(self) -> None:
        self._delete_results()
        delete_redis_keys(HUEY_DRAMATIQ_REDIS_DB, [f"{self.app.NAMESPACE}:*"])
