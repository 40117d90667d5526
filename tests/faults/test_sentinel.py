"""Redis Sentinel (TASKQUEUE_BROKER_URL = redis+sentinel://host:port/service/db): a failover during a
drain loses nothing, and the worker and the producer follow the new master by themselves."""

from __future__ import annotations

import pytest

from taskqueue.brokers import reset_broker
from tests.faults.test_outages import _runs
from tests.helpers import RedisServer, SentinelServer, report, wait_until
from tests.tasks import tally

pytestmark = [pytest.mark.slow, pytest.mark.any_broker, pytest.mark.any_database]

SERVICE = "tqmaster"
DRAIN = 2000
AFTER = 200  # sent once the replica is master


@pytest.fixture
def sentinel_redis(settings):
    """A master, its replica and a Sentinel watching them, all private; this process sends there."""
    master = RedisServer().start()
    replica = RedisServer(extra=("--replicaof", "127.0.0.1", str(master.port))).start()
    sentinel = SentinelServer(SERVICE, master.port)
    try:
        sentinel.start()
        wait_until(lambda: sentinel.replicas_known() == 1, timeout=20, message="the Sentinel found the replica")
        settings.TASKQUEUE_BROKER_URL = sentinel.url
        reset_broker()
        yield master, replica, sentinel
    finally:
        reset_broker()
        sentinel.cleanup()
        replica.cleanup()
        master.cleanup()


def test_a_sentinel_failover_during_a_drain_loses_nothing(sentinel_redis, fault_db, fault_worker, tmp_path):
    master, replica, sentinel = sentinel_redis
    runs = tmp_path / "runs"
    worker = fault_worker("-c", "2", db=fault_db, broker_url=sentinel.url)
    consumers = worker.children_pids()
    ids = [tally.delay(str(runs), i, 0.005).id for i in range(DRAIN)]
    wait_until(lambda: len(_runs(runs)) >= DRAIN // 5, timeout=30, message="the drain under way")
    sentinel.failover()
    wait_until(lambda: sentinel.master_port() == replica.port, timeout=30, message="the replica promoted")
    assert len(_runs(runs)) < DRAIN, "the drain was over before the failover: nothing tested"
    ids += [tally.delay(str(runs), i, 0.002).id for i in range(DRAIN, DRAIN + AFTER)]  # the producer follows
    wait_until(lambda: fault_db.count("SUCCESS") == DRAIN + AFTER, timeout=90, message="every task stored")
    ran = _runs(runs)
    report("Sentinel failover during a drain", sent=DRAIN + AFTER, lost=len(set(ids) - set(ran)),
           duplicate_runs=len(ran) - len(set(ran)),
           consumers_replaced=len(set(worker.children_pids()) - set(consumers)))
    assert fault_db.states() == {"SUCCESS": DRAIN + AFTER}
    assert set(ran) == set(ids)  # nothing lost
    assert len(ran) - len(set(ran)) <= 2, "more duplicate runs than tasks running at the failover"
    assert worker.children_pids() == consumers, "a consumer died: " + worker.output


def _replicated(sentinel: SentinelServer) -> bool:
    """Whether the master the Sentinel names now has a replica in sync."""
    import redis

    try:
        with redis.Redis(port=sentinel.master_port(), socket_connect_timeout=0.5, socket_timeout=2) as client:
            info = client.info("replication")
    except (redis.ConnectionError, TypeError):
        return False
    return info.get("role") == "master" and info.get("slave0", {}).get("state") == "online"


def test_a_crashed_master_loses_no_message_whose_publish_returned(sentinel_redis, fault_db, fault_worker, tmp_path,
                                                                   settings):
    """With `wait_replicas=1` a publish returns once the replica has the message: SIGKILL the
    master during a drain, and the promoted replica still has every message sent."""
    master, replica, sentinel = sentinel_redis
    url = f"{sentinel.url}?wait_replicas=1"
    settings.TASKQUEUE_BROKER_URL = url
    reset_broker()
    runs = tmp_path / "runs"
    worker = fault_worker("-c", "2", db=fault_db, broker_url=url)
    consumers = worker.children_pids()
    ids = [tally.delay(str(runs), i, 0.005).id for i in range(DRAIN)]
    wait_until(lambda: len(_runs(runs)) >= DRAIN // 5, timeout=30, message="the drain under way")
    master.process.kill()  # no shutdown, no last write: whatever only it had is gone
    master.process.wait(10)
    wait_until(lambda: sentinel.master_port() == replica.port, timeout=30, message="the replica promoted")
    assert len(_runs(runs)) < DRAIN, "the drain was over before the crash: nothing tested"
    master.extra = ("--replicaof", "127.0.0.1", str(replica.port))  # back as a replica: publishes wait for it
    master.start()
    # a slow machine may see a second failover, back to it: whichever is master, publishes wait for a replica
    wait_until(lambda: _replicated(sentinel), timeout=30, message="a master with a replica in sync")
    ids += [tally.delay(str(runs), i, 0.005).id for i in range(DRAIN, DRAIN + AFTER)]
    wait_until(lambda: fault_db.count("SUCCESS") == DRAIN + AFTER, timeout=90, message="every task stored")
    ran = _runs(runs)
    report("Sentinel: the master SIGKILLed during a drain (wait_replicas=1)", sent=DRAIN + AFTER,
           lost=len(set(ids) - set(ran)), duplicate_runs=len(ran) - len(set(ran)),
           consumers_replaced=len(set(worker.children_pids()) - set(consumers)))
    assert fault_db.states() == {"SUCCESS": DRAIN + AFTER}
    assert set(ran) == set(ids)  # nothing lost
    # a reservation or an ack the replica had not received yet runs its task again: at most what was in flight
    assert len(ran) - len(set(ran)) <= 2 * 32
    assert worker.children_pids() == consumers, "a consumer died: " + worker.output
