"""The parts the prefork supervisor runs without Django: the bare Redis lease client and task slots."""

import signal
import subprocess
import sys
import uuid

import pytest
import redis

from taskqueue.brokers import Outgoing, create_broker
from taskqueue.brokers.leases import RedisLeases, ReplyError, bare_connection_supported
from taskqueue.worker.slot import TaskSlot
from tests.helpers import RedisServer

pytestmark = [pytest.mark.any_broker, pytest.mark.any_database]  # no database; Redis URLs of their own


@pytest.fixture
def redis_broker(redis_url):
    broker = create_broker(redis_url, f"leases-{uuid.uuid4().hex[:8]}")
    yield broker
    keys = list(broker.client.scan_iter(match=f"{broker.prefix}:*"))
    if keys:
        broker.client.delete(*keys)
    broker.close()


@pytest.mark.redis_only
def test_bare_leases_renew_requeue_and_forget_like_the_broker(redis_broker, redis_url):
    leases = RedisLeases(redis_url, redis_broker.prefix)
    try:
        redis_broker.publish([Outgoing("q", "m1", b"body")])
        assert [d.key for d in redis_broker.reserve("dead", ["q"], count=1, timeout=0)] == ["m1"]
        redis_broker.cancel("m1", 60, terminate="SIGUSR1")
        assert leases.leases(["dead", "alive"], stale_after=60, running=["m1", "other"]) == (0, {"m1": "SIGUSR1"})
        scores = dict(redis_broker.client.zrange(f"{redis_broker.prefix}:heartbeats", 0, -1, withscores=True))
        assert set(scores) == {b"dead", b"alive"}  # fresh heartbeats: nothing was stale
        assert leases.leases(requeue=["dead"]).requeued == 1
        assert redis_broker.client.zscore(f"{redis_broker.prefix}:heartbeats", "dead") is None  # forgotten
        assert redis_broker.inspect(["m1"]).bodies == {"m1": b"body"}  # requeued, though cancelled
    finally:
        leases.close()


def test_bare_leases_authenticate_reload_lost_scripts_and_reconnect():
    server = RedisServer(password="s3cret").start()
    leases = RedisLeases(server.url, "auth")
    try:
        leases.leases(["c1"])
        client = redis.Redis(port=server.port, password="s3cret")
        assert client.zscore("auth:heartbeats", "c1") is not None
        client.script_flush()  # as after a Redis restart: the next call loads the script again
        leases.leases(["c2"])
        assert client.zscore("auth:heartbeats", "c2") is not None
        client.client_kill_filter(_type="normal", skipme=True)  # drops the lease client's connection
        with pytest.raises(OSError):
            leases.leases(["c3"])
        leases.leases(["c3"])  # a new connection on the next call
        assert client.zscore("auth:heartbeats", "c3") is not None
        with pytest.raises(ReplyError):
            RedisLeases(server.url.replace("s3cret", "wrong"), "auth").leases(["c4"])
    finally:
        leases.close()
        server.stop()


def test_bare_connections_only_for_plain_redis_urls():
    assert bare_connection_supported("redis://127.0.0.1:6379/3")
    assert bare_connection_supported("unix:///run/redis.sock?db=2")
    assert not bare_connection_supported("rediss://example.com:6380/0")  # TLS stays with redis-py
    assert not bare_connection_supported("django://")


def _in_child(slot: TaskSlot, code: str) -> subprocess.Popen:
    """A fresh Python process that maps `slot` by descriptor, as a consumer the keeper spawns does."""
    script = f"from taskqueue.worker.slot import TaskSlot\nslot = TaskSlot(shared=True, fd={slot.fd})\n{code}"
    return subprocess.Popen([sys.executable, "-c", script], pass_fds=[slot.fd], stdout=subprocess.PIPE, text=True)


def test_a_slot_written_by_another_process_is_read_here_and_survives_by_fd():
    slot = TaskSlot(shared=True)
    writer = _in_child(slot, "slot._write(b'{\"id\": \"t1\", \"started\": 1.0, \"limit\": 2}\\nBODY')")
    assert writer.wait(20) == 0
    info, body = slot.read()
    assert info == {"id": "t1", "started": 1.0, "limit": 2} and body == b"BODY"
    same = TaskSlot(shared=True, fd=slot.fd)  # how the keeper maps it again after its exec
    assert same.read()[0]["id"] == "t1"
    slot.end()
    assert same.read() is None
    same._write(b"{not json")  # a consumer killed mid-write
    assert slot.read() is None
    slot.close()


def test_a_killed_writer_does_not_leave_the_slot_locked():
    slot = TaskSlot(shared=True)
    holder = _in_child(slot, "import time\nheld = slot._locked()\nheld.__enter__()\n"
                             "print('locked', flush=True)\ntime.sleep(60)")
    try:
        assert holder.stdout.readline().strip() == "locked"
        holder.send_signal(signal.SIGKILL)  # dies holding the record lock
        holder.wait(20)
        assert slot.read() is None  # the lock went with the process
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(20)
        holder.stdout.close()
        slot.close()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")  # the child only waits for a signal
def test_a_stop_signal_right_after_fork_is_never_lost():
    """A child forked by the supervisor runs the supervisor's signal handlers until it installs its
    own: a SIGTERM in between must still stop it, not increment a counter in the child's copy."""
    import os
    import threading
    import time

    from taskqueue.worker.processes import ChildProcess, fork

    def slow_starting_child() -> None:
        time.sleep(0.3)  # loading what it needs, before its own handlers exist
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
        if not stopping.wait(5):
            raise SystemExit(3)  # the stop never arrived

    counted = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: counted.append(signum))  # a supervisor's
    try:
        pid = fork(slow_starting_child, "slow-start")
        os.kill(pid, signal.SIGTERM)
        child = ChildProcess(pid)
        child.join(10)
        assert not child.is_alive() and child.exitcode != 3
    finally:
        signal.signal(signal.SIGTERM, previous)
