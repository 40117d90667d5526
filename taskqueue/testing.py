"""Test helpers (a pytest plugin): a real `runworker` subprocess against the test database, and
an in-process runner with assertions on what waits in a queue (docs/testing.md).

In a test that uses the `transactional_db` fixture::

    def test_add(taskqueue_worker):
        taskqueue_worker("-c", "2")
        assert add.delay(2, 2).get(timeout=10) == 4

    def test_signup_sends_a_welcome(client):
        client.post("/signup/", {"email": "ana@example.com"})
        assert_enqueued("accounts.tasks.send_welcome", kwargs={"email": "ana@example.com"})
        run_queued()  # runs it here, through the worker's own path, with what it sends in turn
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

import pytest

from .worker.databases import OVERRIDE_ENV, database_names

if TYPE_CHECKING:
    from .message import Message

READY_MARK = "[taskqueue] worker "
_READY = re.compile(re.escape(READY_MARK) + r"\S+ ready")  # what follows on the line does not matter


class WorkerProcess:
    """A `runworker` subprocess in its own process group, stopped by its PID at the end."""

    def __init__(self, args: tuple[str, ...] = (), env: dict[str, str] | None = None):
        self.args = args
        self.env = {**os.environ, OVERRIDE_ENV: json.dumps(database_names()), **(env or {})}
        self.lines: list[str] = []
        self.process: subprocess.Popen | None = None
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 30) -> WorkerProcess:
        cmd = [sys.executable, "-m", "django", "runworker", *self.args]
        self.env.setdefault("PYTHONPATH", os.getcwd())
        self.process = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read_output, args=(self.process.stdout,), daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout):
            self.kill()
            raise RuntimeError(f"worker not ready within {timeout} s:\n{self.output}")
        return self

    def _read_output(self, output: IO[str]) -> None:
        for line in output:
            self.lines.append(line)
            if _READY.match(line):
                self._ready.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the worker is not started: call start() first")
        return self.process.pid

    def wait_for_output(self, text: str, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            time.sleep(0.02)
        return False

    def terminate(self, timeout: float = 30) -> int | None:
        """SIGTERM (warm shutdown) and wait; SIGKILL the group if it does not stop in time."""
        if self.process is None:
            return None
        if self.process.poll() is not None:
            self._close_output()
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self._close_output()
        return code

    def kill(self) -> None:
        """SIGKILL the worker and its consumers at once, as a crash or power loss would."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
            self._close_output()

    def _close_output(self) -> None:
        """Once the reader has seen the end of the output (bounded), close the pipe."""
        if self._reader is not None:
            self._reader.join(5)
        if (not self._reader or not self._reader.is_alive()) and self.process and self.process.stdout:
            self.process.stdout.close()

    def children_pids(self) -> list[int]:
        import psutil

        return [child.pid for child in psutil.Process(self.pid).children()]


def start_worker(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> WorkerProcess:
    """Start `manage.py runworker ARGS` against this test run's databases and wait until it is ready."""
    return WorkerProcess(args, env).start(timeout)


@pytest.fixture
def taskqueue_worker(transactional_db) -> Iterator:
    """Factory: `taskqueue_worker("-c", "2", "-Q", "default")` starts a worker, stopped after the test."""
    started: list[WorkerProcess] = []

    def factory(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> WorkerProcess:
        worker = start_worker(*args, env=env, timeout=timeout)
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        worker.terminate(timeout=15)


def run_queued(queues: tuple[str, ...] | list[str] = ("default",), *, limit: int = 1000) -> int:
    """Run the messages ready in `queues` in this process, one at a time through the worker's own
    path (results stored, chains and chords followed, retries and callbacks sent), and what they
    send in turn, until none is ready; returns how many ran. Messages waiting for an eta (a
    countdown, a retry's delay) are not ready. Raises if more than `limit` ran (a task that keeps
    sending itself)."""
    from .brokers import get_broker  # here: pytest loads this plugin before Django's settings
    from .worker.batch import process
    from .worker.execute import ExecutionContext

    broker = get_broker()
    ctx = ExecutionContext(broker=broker, hostname="in-process", consumer_id=f"in-process.{os.getpid()}")
    ran = 0
    while deliveries := broker.reserve(ctx.consumer_id, list(queues), count=1, timeout=0):
        if ran >= limit:
            broker.release(deliveries)
            raise AssertionError(f"more than {limit} tasks ran: does a task keep sending itself?")
        process(deliveries, ctx)
        ran += len(deliveries)
    return ran


def queued(queue: str = "default") -> list[Message]:
    """The messages ready in `queue`, in the order workers would take them (they stay queued)."""
    from .brokers import get_broker  # here: pytest loads this plugin before Django's settings
    from .conf import get_settings
    from .message import decode

    broker = get_broker()
    consumer = f"in-process-look.{os.getpid()}"
    deliveries = broker.reserve(consumer, [queue], count=100_000, timeout=0)
    try:
        key = get_settings().signing_key
        return [decode(delivery.body, key) for delivery in deliveries if not delivery.revoked]
    finally:
        broker.release(deliveries)  # each back in its place (its rank is kept)


def assert_enqueued(task_name: str, args: list | tuple | None = None, kwargs: dict | None = None,
                    queue: str = "default") -> Message:
    """The first message of `task_name` ready in `queue` (with these args / kwargs when given);
    AssertionError listing what is queued otherwise."""
    messages = queued(queue)
    for message in messages:
        if message.task == task_name and (args is None or list(message.args) == list(args)) \
                and (kwargs is None or message.kwargs == kwargs):
            return message
    listing = "\n".join(f"  {m.task}{tuple(m.args)!r} {m.kwargs!r}" for m in messages) or "  (nothing)"
    wanted = f"{task_name}" + (f"{tuple(args)!r}" if args is not None else "") + (f" {kwargs!r}" if kwargs else "")
    raise AssertionError(f"no {wanted} ready in queue {queue!r}; it holds:\n{listing}")
