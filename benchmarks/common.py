"""Shared plumbing for the benchmark harness: Redis/PostgreSQL/RabbitMQ locations, throwaway
databases and vhosts, worker process groups (started in their own session, stopped by PID) and
their memory.

Every system gets its own Redis DB number or key namespace, its own PostgreSQL database whose
name starts with ``bench_`` and, on RabbitMQ, its own vhost named the same way; nothing here
flushes a Redis DB or touches other databases or vhosts.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

REDIS_HOST = os.environ.get("BENCH_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6379"))
PG_DSN = os.environ.get("BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
# RabbitMQ: the vhosts are made and deleted with rabbitmqctl, as the server's administrator.
AMQP_HOST = os.environ.get("BENCH_AMQP_HOST", "127.0.0.1")
AMQP_PORT = int(os.environ.get("BENCH_AMQP_PORT", "5672"))
AMQP_USER = os.environ.get("BENCH_AMQP_USER", "guest")
AMQP_PASSWORD = os.environ.get("BENCH_AMQP_PASSWORD", "guest")

# One Redis DB per family, all reserved for benchmarks: taskqueue, Celery, Huey + Dramatiq.
TASKQUEUE_REDIS_DB = 13
CELERY_REDIS_DB = 14
HUEY_DRAMATIQ_REDIS_DB = 15

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOG_DIR = RESULTS_DIR / "logs"


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def redis_client(db: int):
    import redis

    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=30)


def delete_redis_keys(db: int, patterns: Iterable[str]) -> int:
    """Delete the keys matching `patterns` in DB `db` (SCAN + DEL; never FLUSHDB)."""
    client = redis_client(db)
    deleted = 0
    for pattern in patterns:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.delete(*batch)
                batch.clear()
        if batch:
            deleted += client.delete(*batch)
    client.close()
    return deleted


def count_existing_keys(client, keys: list[str], chunk: int = 2000) -> int:
    """How many of `keys` exist (EXISTS counts every key it is given)."""
    return sum(client.exists(*keys[i:i + chunk]) for i in range(0, len(keys), chunk))


def recreate_database(name: str) -> None:
    """Drop and create the throwaway PostgreSQL database `name` (must start with ``bench_``)."""
    import psycopg

    assert name.startswith("bench_"), name
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    import psycopg

    assert name.startswith("bench_"), name
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def recreate_sqlite_file(path: Path) -> None:
    """Start the SQLite database `path` afresh: no file left (its system creates it), its folder made."""
    drop_sqlite_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)


def drop_sqlite_file(path: Path) -> None:
    """Delete the SQLite file `path` and its -wal, -shm and -journal companions, where there are any."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def amqp_url(vhost: str, scheme: str = "amqp") -> str:
    """`amqp://` for taskqueue, `pyamqp://` for Celery; the vhost URL-quoted."""
    from urllib.parse import quote

    return f"{scheme}://{AMQP_USER}:{AMQP_PASSWORD}@{AMQP_HOST}:{AMQP_PORT}/{quote(vhost, safe='')}"


def rabbitmq_problem(timeout: float = 2.0) -> str | None:
    """Why the benchmark's RabbitMQ systems cannot run here (no server answering, no rabbitmqctl
    to make their vhosts), or None when they can."""
    import amqp

    try:
        connection = amqp.Connection(host=f"{AMQP_HOST}:{AMQP_PORT}", userid=AMQP_USER, password=AMQP_PASSWORD,
                                     connect_timeout=timeout)
        connection.connect()
        connection.close()
    except Exception as exc:
        return f"RabbitMQ at {AMQP_HOST}:{AMQP_PORT} does not answer ({type(exc).__name__}: {exc})"
    if not shutil.which("rabbitmqctl"):
        return "rabbitmqctl is not on PATH (the benchmark makes and deletes its own vhosts with it)"
    return None


def rabbitmq_version() -> str | None:
    import amqp

    try:
        connection = amqp.Connection(host=f"{AMQP_HOST}:{AMQP_PORT}", userid=AMQP_USER, password=AMQP_PASSWORD,
                                     connect_timeout=2)
        connection.connect()
    except Exception:
        return None
    try:
        version = connection.server_properties.get("version")
        return version.decode() if isinstance(version, bytes) else version
    finally:
        connection.close()


def _rabbitmqctl(*args: str, check: bool = True) -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise RuntimeError("rabbitmqctl is not on PATH: the RabbitMQ systems need it to make their vhost")
    proc = subprocess.run([ctl, "-q", *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")


def recreate_vhost(name: str) -> None:
    """Delete (leftovers of an interrupted run) and add the throwaway vhost `name` (must start with
    ``bench_``), with every permission for the benchmark's user."""
    assert name.startswith("bench_"), name
    problem = rabbitmq_problem()
    if problem:
        raise RuntimeError(problem)
    _rabbitmqctl("delete_vhost", name, check=False)
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, AMQP_USER, ".*", ".*", ".*")


def delete_vhost(name: str) -> None:
    assert name.startswith("bench_"), name
    _rabbitmqctl("delete_vhost", name, check=False)


def percentile(sorted_samples: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    return sorted_samples[min(len(sorted_samples) - 1, int(q * len(sorted_samples)))]


def wait_until(predicate, timeout: float, interval: float = 0.02, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        time.sleep(interval)


class WorkerGroup:
    """Worker command started in a new session (its own process group), logging to a file.

    `stop()` signals that process group only, by the PID this object started.
    """

    def __init__(self, name: str, cmd: list[str], env: dict[str, str] | None = None):
        self.name = name
        self.cmd = cmd
        self.env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
        self.log_path = LOG_DIR / f"{name}.worker.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerGroup:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "w")  # noqa: SIM115 - kept open for the child's lifetime
        self.process = subprocess.Popen(self.cmd, env=self.env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        return self

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            tail = self.log_path.read_text()[-3000:] if self.log_path.exists() else ""
            raise RuntimeError(f"{self.name} worker exited ({self.process and self.process.returncode}):\n{tail}")

    def processes(self) -> list[psutil.Process]:
        """The worker's main process and all its descendants."""
        if self.process is None or self.process.poll() is not None:
            return []
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def memory(self) -> dict[str, float]:
        """Total RSS and USS (unique set: pages no other process shares) of the group, in MB."""
        rss = uss = 0
        procs = self.processes()
        for proc in procs:
            try:
                info = proc.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rss += info.rss
            uss += info.uss
        return {"rss_mb": rss / 2**20, "uss_mb": uss / 2**20, "processes": len(procs)}

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the group (warm shutdown), SIGKILL it if it is still there after `timeout`."""
        if self.process is None:
            return
        pgid = self.process.pid
        if self.process.poll() is None:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # children that outlived the main process, or a main process that ignored SIGTERM
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass


def python() -> str:
    return sys.executable


def copies(cmd: list[str], n: int) -> list[str]:
    """One command line that runs `n` copies of `cmd` side by side under a small `sh`, for peers whose
    worker is one process doing one task at a time (django-tasks-db's `db_worker`, Procrastinate's
    worker with concurrency 1): the `WorkerGroup` signals the whole group, the shell waits for the
    copies' own shutdown, and its ~1 MB is counted with the group's memory."""
    import shlex

    line = shlex.join(cmd)
    return ["/bin/sh", "-c", 'trap "wait; exit 0" TERM INT; ' + " & ".join([line] * n) + " & wait"]
