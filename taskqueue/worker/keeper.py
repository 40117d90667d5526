"""The keeper: the prefork supervisor of a Redis worker, in a process without Django.

`runworker` forks its consumers (and the scheduler) while Django is loaded, then replaces itself
with this module (exec: same PID, same children, signals still reach it). A process with Django,
psycopg and redis-py holds about 50 MB; the keeper is a bare interpreter with hiredis, about
14 MB, and the forked consumers keep the pages they were born with. It runs the same Supervisor
loop. A consumer it has to replace starts fresh with `python -m taskqueue.worker.child`, which
loads Django itself from the environment and sys.path of the runworker process.

Nothing here may import Django, redis-py or the modules that do.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import NoReturn

from ..brokers.leases import RedisLeases
from ..log import configure_worker_logging
from . import WorkerConfig
from .processes import ChildProcess, ConsumerProcess
from .slot import TaskSlot
from .supervisor import Supervisor

logger = logging.getLogger("taskqueue.worker")
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class SpawnLauncher:
    """Starts replacement consumers and schedulers as fresh processes that load Django."""

    def __init__(self, config: WorkerConfig, queues: list[str], loglevel: str, settle_timeout: float):
        self.config, self.queues, self.loglevel = config, queues, loglevel
        self.settle_timeout = settle_timeout  # the loop (and the leases it renews) waits this long at most

    def consumer(self, consumer_id: str, slot: TaskSlot | None) -> ConsumerProcess:
        slot = slot or TaskSlot(shared=True)
        child_fd = 3 if slot.fd != 3 else 4  # the slot is the one descriptor the child inherits
        command = self._command("consumer", {
            "id": consumer_id, "hostname": self.config.hostname, "queues": self.queues, "slot_fd": child_fd,
            "prefetch": self.config.prefetch, "limits": asdict(self.config.child_limits)})
        pid = os.posix_spawn(command[0], command, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, slot.fd, child_fd)])
        return ConsumerProcess(pid, consumer_id, slot)

    def scheduler(self) -> ChildProcess:
        command = self._command("scheduler", {})
        return ChildProcess(os.posix_spawn(command[0], command, os.environ))

    def settle(self, running: tuple[dict, bytes], reason: str) -> None:
        import subprocess  # only here: each module the keeper imports costs memory for its whole life

        info, body = running
        command = self._command("settle", {"info": info, "hostname": self.config.hostname, "reason": reason})
        try:
            code = subprocess.run(command, input=body, timeout=self.settle_timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            code = None
        if code != 0:
            logger.error("Could not store the outcome of %s[%s]; it goes back to the queue",
                         info["task"], info["id"])

    def _command(self, kind: str, payload: dict) -> list[str]:
        payload = {**payload, "loglevel": self.loglevel, "parent": os.getpid()}
        return [sys.executable, "-m", "taskqueue.worker.child", kind, json.dumps(payload)]


def hand_over(supervisor: Supervisor, *, broker_url: str, prefix: str, queues: list[str],
              loglevel: str) -> NoReturn:
    """Replace this (Django) process with the keeper, keeping the PID and the children.

    Stop signals are blocked first: one that arrives during the exec waits for the keeper's
    handlers (the blocked mask survives exec); those already counted travel in the state."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    state = {
        "config": asdict(supervisor.config), "queues": queues, "loglevel": loglevel,
        "broker_url": broker_url, "prefix": prefix, "instance": supervisor.instance,
        "spawned": supervisor.spawned, "signals_received": supervisor.signals_received,
        "heartbeat_interval": supervisor.heartbeat_interval, "visibility_timeout": supervisor.visibility_timeout,
        "consumers": [{"id": h.consumer_id, "pid": h.pid, "slot_fd": h.slot.fd} for h in supervisor.consumers],
        "scheduler_pid": supervisor.scheduler.pid if supervisor.scheduler is not None else None,
    }
    for handle in supervisor.consumers:
        os.set_inheritable(handle.slot.shared_fd(), True)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-c", _BOOTSTRAP, json.dumps(state)], environment)


# The keeper's imports must not run taskqueue/__init__.py, which loads the public API and with it
# Django: the package is registered bare (its __path__ only) before the first import from it.
_BOOTSTRAP = f"""
import sys, types
package = types.ModuleType("taskqueue")
package.__path__ = [{str(Path(__file__).resolve().parent.parent)!r}]
sys.modules["taskqueue"] = package
from taskqueue.worker.keeper import main
sys.exit(main(sys.argv))
"""


def main(argv: list[str]) -> int:
    state = json.loads(argv[1])
    configure_worker_logging(state["loglevel"])
    config = WorkerConfig(**state["config"])
    supervisor = Supervisor(
        config, RedisLeases(state["broker_url"], state["prefix"]),
        SpawnLauncher(config, state["queues"], state["loglevel"], settle_timeout=state["visibility_timeout"] / 2),
        heartbeat_interval=state["heartbeat_interval"], visibility_timeout=state["visibility_timeout"],
        instance=state["instance"], spawned=state["spawned"])
    supervisor.signals_received = state["signals_received"]
    supervisor.consumers = [ConsumerProcess(c["pid"], c["id"], TaskSlot(shared=True, fd=c["slot_fd"]))
                            for c in state["consumers"]]
    for handle in supervisor.consumers:
        os.set_inheritable(handle.slot.shared_fd(), False)  # a spawned child gets its own slot only (SpawnLauncher)
    if state["scheduler_pid"]:
        supervisor.scheduler = ChildProcess(state["scheduler_pid"])
    supervisor.install_signal_handlers()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return supervisor.supervise()
