"""The fault tier: workers against a private PostgreSQL cluster and a private Redis (AOF on) or
RabbitMQ node that the tests stop, restart, pause and cut, while the shared servers of the machine are never touched.

A worker here reads and writes a throwaway database on the private cluster (migrated once per
module as a template); the test reads that database with psycopg and sends tasks through the
private Redis. Tasks count their runs in a file (`tests.tasks.tally`), so a run is counted even
while the database is down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from taskqueue.brokers import reset_broker
from taskqueue.testing import WorkerProcess
from taskqueue.worker.databases import OVERRIDE_ENV
from tests.helpers import PostgresServer, RedisServer

REPO = Path(__file__).resolve().parents[2]


@pytest.hookimpl(tryfirst=True)  # before tests/conftest.py turns the markers into skips
def pytest_collection_modifyitems(config, items):
    """Tests on the private PostgreSQL cluster do not touch the run's own database: they are
    any_database, run once, in the runs on PostgreSQL, not again in the SQLite ones."""
    for item in items:
        if REPO / "tests" / "faults" not in item.path.parents:
            continue
        if "pg_server" in getattr(item, "fixturenames", ()) or item.path.name == "test_servers.py":
            item.add_marker(pytest.mark.any_database)


@pytest.fixture(scope="module")
def pg_server():
    server = PostgresServer().start()
    template = server.create_database("faults_template")
    _manage("migrate", "--noinput", env={"DATABASE_URL": template})
    yield server
    server.cleanup()


class FaultDatabase:
    """A fresh copy of the migrated template on the private cluster, read with psycopg."""

    def __init__(self, server: PostgresServer):
        self.server = server
        self.name = f"faults_{uuid.uuid4().hex[:8]}"
        with server.connect() as conn:
            conn.execute(f'CREATE DATABASE "{self.name}" TEMPLATE faults_template')
        self.url = server.url(self.name)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """One query on a new connection (None while the server is down, so waits can poll it)."""
        try:
            with psycopg.connect(self.url, connect_timeout=2, autocommit=True) as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.OperationalError:
            return None

    def states(self) -> dict[str, int]:
        rows = self.query("SELECT state, count(*) FROM taskqueue_taskresult GROUP BY state")
        return dict(rows or [])

    def count(self, state: str) -> int:
        return self.states().get(state, 0)


@pytest.fixture
def fault_db(pg_server) -> FaultDatabase:
    return FaultDatabase(pg_server)


@pytest.fixture
def fault_redis(settings):
    """A private Redis with AOF on; this test process sends its tasks there."""
    server = RedisServer().start()
    settings.TASKQUEUE_BROKER_URL = server.url
    reset_broker()
    yield server
    reset_broker()
    server.cleanup()


@pytest.fixture
def fault_worker():
    """Factory: a runworker subprocess on the fault database and broker; stopped after the test."""
    started: list[WorkerProcess] = []

    def start(*args: str, db: FaultDatabase, broker_url: str, env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(args, worker_env(db, broker_url, env)).start(30)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.terminate(timeout=20) is None:
            print(worker.output)


def worker_env(db: FaultDatabase, broker_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    redis_url = broker_url if broker_url.startswith("redis") else os.environ.get("TASKQUEUE_TEST_REDIS_URL", "")
    kind = "django" if broker_url == "django://" else "amqp" if broker_url.startswith("amqp") else "redis"
    env = {OVERRIDE_ENV: "", "DATABASE_URL": db.url, "TASKQUEUE_TEST_BROKER": kind, "PYTHONPATH": str(REPO)}
    if redis_url:
        env["TASKQUEUE_TEST_REDIS_URL"] = redis_url
    if kind == "amqp":
        env["TASKQUEUE_TEST_AMQP_URL"] = broker_url
    return {**env, **(extra or {})}


def _manage(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run([sys.executable, "-m", "django", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def run_in(db: FaultDatabase, broker_url: str, code: str) -> str:
    """Run Python `code` in a Django process on the fault database and broker; its stdout."""
    return _manage("shell", "-c", code, env=worker_env(db, broker_url))
