"""Processes the keeper starts: `python -m taskqueue.worker.child consumer|scheduler|settle JSON`.

Each loads Django from the environment the runworker process handed to the keeper
(DJANGO_SETTINGS_MODULE, PYTHONPATH, the test databases of `taskqueue.testing`), then runs what a
forked child of runworker would run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys

from . import die_with_parent


def main(argv: list[str]) -> None:
    kind, payload = argv[1], json.loads(argv[2])
    _die_with(payload["parent"])

    import django

    django.setup()

    # After django.setup(): these import the models.
    from ..log import configure_worker_logging
    from . import ChildLimits, pool
    from .databases import apply_database_override
    from .slot import TaskSlot

    apply_database_override()
    configure_worker_logging(payload["loglevel"])
    if kind == "consumer":
        multiprocessing.current_process().name = f"consumer-{payload['id'].rsplit('.', 1)[-1]}"
        slot = TaskSlot(shared=True, fd=payload["slot_fd"])
        os.set_inheritable(slot.shared_fd(), False)  # not passed on to processes the tasks start
        pool.run_consumer(payload["id"], payload["hostname"], payload["queues"], slot, payload["prefetch"],
                          ChildLimits(**payload["limits"]), signal_shutdown=True)
    elif kind == "scheduler":
        multiprocessing.current_process().name = "scheduler"
        pool.run_scheduler()
    elif kind == "settle":
        pool.settle_killed((payload["info"], sys.stdin.buffer.read()), payload["hostname"], payload["reason"])
    else:
        raise SystemExit(f"unknown child kind {kind!r}")


def _die_with(parent: int) -> None:
    """Also when the keeper died before this process asked to die with it."""
    die_with_parent()
    if os.getppid() != parent:
        raise SystemExit("the worker that started this process is gone")


if __name__ == "__main__":
    main(sys.argv)
