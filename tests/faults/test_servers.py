"""The fault tier's throwaway servers can be broken and restored."""

from __future__ import annotations

import os

import psycopg
import pytest
import redis

from tests.helpers import PostgresServer, RedisServer, pid_alive, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.any_broker, pytest.mark.any_database]  # the private servers only


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def pg_server():
    server = PostgresServer().start()
    yield server
    server.cleanup()


def test_redis_aof_keeps_a_key_across_stop_and_start(redis_server):
    redis.Redis.from_url(redis_server.url).set("survivor", "yes")
    redis_server.stop()
    assert redis_server.pid is None
    redis_server.start()
    assert redis.Redis.from_url(redis_server.url).get("survivor") == b"yes"
    redis_server.restart()
    assert redis.Redis.from_url(redis_server.url).get("survivor") == b"yes"


def test_redis_pause_times_out_and_resume_restores(redis_server):
    client = redis.Redis.from_url(redis_server.url, socket_timeout=0.3, socket_connect_timeout=0.3)
    assert client.ping()
    redis_server.pause()
    with pytest.raises(redis.TimeoutError):
        client.ping()
    redis_server.resume()
    assert wait_until(lambda: _pings(client), timeout=5, message="ping after resume")


def test_redis_stop_while_paused_and_cleanup_removes_the_dir():
    server = RedisServer(appendonly=False).start()
    pid, directory = server.pid, server.dir
    server.pause()
    server.cleanup()
    assert not pid_alive(pid)
    assert not os.path.exists(directory)


def test_postgres_row_survives_restart(pg_server):
    url = pg_server.create_database("faults")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (v text)")
        conn.execute("INSERT INTO t VALUES ('kept')")
    old_pid = pg_server.pid
    pg_server.restart()
    assert pg_server.pid not in (None, old_pid)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("kept",)]


def test_postgres_terminate_backends_breaks_open_connections(pg_server):
    url = pg_server.create_database("victim")
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert pg_server.terminate_backends("victim") == 1
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    with psycopg.connect(url) as conn:  # the server itself is fine
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_postgres_cleanup_stops_and_removes_the_dir():
    server = PostgresServer().start()
    pid, directory = server.pid, server.dir
    assert pid is not None and pid_alive(pid)
    server.cleanup()
    assert not pid_alive(pid)
    assert not os.path.exists(directory)
    server.cleanup()  # idempotent


def _pings(client: redis.Redis) -> bool:
    try:
        return client.ping()
    except redis.RedisError:
        return False
