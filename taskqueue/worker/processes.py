"""Child processes as a supervisor sees them, known by PID: forked by `runworker` (`fork`), or
spawned by the keeper (worker/keeper.py), which uses the same handles for both. No Django here.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

from .slot import TaskSlot


class ChildProcess:
    """A child of this process: asked to stop (SIGTERM: finish the task in hand, then exit) or
    killed (SIGKILL), and reaped when it has exited."""

    killed_for: str | None = None

    def __init__(self, pid: int):
        self.pid = pid
        self.exitcode: int | None = None

    def is_alive(self) -> bool:
        if self.exitcode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.exitcode = -1
            else:
                if pid:
                    self.exitcode = os.waitstatus_to_exitcode(status)
        return self.exitcode is None

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self, reason: str) -> None:
        self.killed_for = reason
        self._signal(signal.SIGKILL)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    def _signal(self, signum: int) -> None:
        if self.is_alive():
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass


class ConsumerProcess(ChildProcess):
    """A consumer's process, with its lease id and the slot that shows its current task."""

    can_be_killed = True

    def __init__(self, pid: int, consumer_id: str, slot: TaskSlot):
        super().__init__(pid)
        self.consumer_id, self.slot = consumer_id, slot
        self.reaped = False


def fork(target: Callable[[], object], name: str) -> int:
    """Run `target` in a forked child named `name` (in log lines); returns the child's PID. The
    child exits with 0 when `target` returns, 1 when it raises, or the code of its SystemExit."""
    import multiprocessing  # here, not at the top: the keeper imports this module and never forks

    # A stop signal must not reach the child while it still runs the parent's handlers (the
    # supervisor's signal counter): that signal would be lost and the child never stop. Blocked
    # across the fork, it waits for the child's own handlers (a consumer's, the scheduler's).
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    # The objects built so far are the parent's: kept out of the child's collections, whose visits
    # would copy every page they sit on (about 1.3 MB more private memory per consumer).
    gc.freeze()
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return pid
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # until `target` installs its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    code = 1
    try:
        multiprocessing.current_process().name = name
        if sys.stdin is not None:  # the terminal's input stays the parent's
            sys.stdin.close()
            sys.stdin = open(os.devnull)  # noqa: SIM115 - for the life of the process
        target()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
