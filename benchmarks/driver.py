"""`python -m benchmarks.driver SYSTEM`: one system's client, driven by the runner over a pipe.

Runs in its own process so each system configures Django (or not) its own way. Reads one JSON
command per line on stdin and answers one JSON line on the original stdout; everything else the
libraries print goes to stderr (the runner's log file). Commands: ``start``, ``throughput``,
``latency``, ``chord``, ``chain``, ``mixed``, ``memory``, ``stop``. Every reply also carries the PID
of the current worker group's leader (``worker_pid``, or null), which the runner keeps for its
kill-by-process-group fallback: ``mixed`` replaces the worker group, even when it fails.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from .adapters import NotSupported, create


def main() -> None:
    # Keep the protocol channel to ourselves: fd 1 becomes stderr for whatever else prints.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    adapter = create(sys.argv[1])
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        try:
            if op == "start":
                adapter.setup()
                result = adapter.start(**command)
            elif op == "stop":
                adapter.stop()
                adapter.teardown()
                result = {}
            else:
                result = getattr(adapter, op)(**command)
            reply = {"ok": True, "result": result}
        except NotSupported as exc:
            reply = {"ok": False, "unsupported": True, "error": str(exc)}
        except Exception as exc:  # reported to the runner, which records the failure and goes on
            traceback.print_exc()
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        workers = adapter.workers
        reply["worker_pid"] = workers.process.pid if workers is not None and workers.process is not None else None
        channel.write(json.dumps(reply) + "\n")
        if op == "stop":
            break
    if adapter.workers is not None:
        adapter.stop()


if __name__ == "__main__":
    main()
