"""The Redis broker on a Redis Cluster (redis+cluster://): each queue's keys in one slot, queues
spread over the masters, nothing else in the project's Redis use crossing slots. The contract
suite runs on the cluster too (tests/integration/test_broker_contract.py)."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
import redis

from taskqueue import checks
from taskqueue.brokers import Outgoing, broker_kind, create_broker, reset_broker
from taskqueue.brokers.leases import bare_connection_supported

pytestmark = pytest.mark.any_broker  # its own cluster, whatever the run's broker


@pytest.fixture
def layout_broker(redis_cluster):
    broker = create_broker(redis_cluster.url, "layout", priority_aging=1.0)
    yield broker
    for master in broker.nodes.masters():
        for one in list(master.scan_iter(match="{layout*")):
            master.delete(one)
    broker.close()


def _keys_by_master(broker) -> dict[int, list[str]]:
    return {master.connection_pool.connection_kwargs["port"]: [k.decode() for k in master.scan_iter(match="{layout*")]
            for master in broker.nodes.masters()}


def test_each_queue_keeps_its_keys_in_one_slot_and_queues_spread_over_the_masters(redis_cluster, layout_broker):
    broker = layout_broker
    queues = [f"q{i}" for i in range(12)]
    broker.publish([Outgoing(q, f"{q}-now", b"x") for q in queues] +
                   [Outgoing(q, f"{q}-later", b"x", eta=time.time() + 60) for q in queues], remember=60)
    broker.leases(["alive"])
    broker.lock("mutex", "alive", stale_after=30)
    held = broker.reserve("alive", queues, count=len(queues), timeout=0)  # something in flight in each queue
    assert sorted(d.queue for d in held) == sorted(queues)
    broker.cancel("t1", 60, terminate="SIGTERM")
    broker.leases(["alive"], stale_after=30, running=["t1"])

    slots_of: dict[str, set[int]] = defaultdict(set)  # partition -> the slots its keys hash to
    masters_of: dict[str, set[int]] = defaultdict(set)
    for port, keys in _keys_by_master(broker).items():
        for one in keys:
            partition = one[:one.index("}") + 1]
            slots_of[partition].add(redis_cluster._ask(port, "CLUSTER", "KEYSLOT", one))
            masters_of[partition].add(port)
    assert set(slots_of) == {"{layout}", *[f"{{layout:{q}}}" for q in queues]}
    assert all(len(slots) == 1 for slots in slots_of.values()), slots_of
    assert all(len(ports) == 1 for ports in masters_of.values())
    assert len({port for ports in masters_of.values() for port in ports}) == 3, "the queues are not spread"
    assert redis_cluster.node_of("{layout:q0}:msg") in masters_of["{layout:q0}"]
    # What each queue holds stays in its slot: the in-flight record, the delayed message, the markers.
    q0 = set(_keys_by_master(broker)[redis_cluster.node_of("{layout:q0}")])
    assert {"{layout:q0}:inflight:alive", "{layout:q0}:delayed", "{layout:q0}:cancelled:t1",
            "{layout:q0}:published:q0-now"} <= q0
    assert broker.lock("mutex", "other", stale_after=30) is False  # the owner renewed at home
    assert broker.leases(requeue=["alive"]).requeued == len(queues)
    assert broker.inspect(holders=True).sizes == {q: 1 for q in queues}


def test_an_idle_consumer_of_several_queues_is_woken_by_any_of_them(redis_cluster, layout_broker):
    import threading

    queues = [f"w{i}" for i in range(3)]
    layout_broker.reserve("c", queues, timeout=0)  # names the queues
    timer = threading.Timer(0.3, lambda: layout_broker.publish([Outgoing("w2", "late", b"x")]))
    timer.start()
    started = time.monotonic()
    got = layout_broker.reserve("c", queues, count=5, timeout=10)
    timer.join()
    assert [d.key for d in got] == ["late"] and time.monotonic() - started < 3


def test_a_cluster_url_is_a_redis_broker_with_the_full_supervisor_and_passes_the_checks(redis_cluster, settings):
    assert broker_kind(redis_cluster.url) == "redis"
    assert not bare_connection_supported(redis_cluster.url)  # the lean supervisor speaks to one server
    settings.TASKQUEUE_BROKER_URL = redis_cluster.url
    try:
        assert not [p for p in checks.check_settings() if p.id == "taskqueue.E002"]
        assert [p.id for p in checks.check_redis_durability()] == ["taskqueue.W003"]  # its masters keep no AOF
    finally:
        reset_broker()


def test_braces_in_the_key_prefix_are_refused(redis_cluster):
    from taskqueue.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="no braces"):
        create_broker(redis_cluster.url, "a{b}")


def test_outcome_notifications_reach_waiters_on_any_master(redis_cluster, settings):
    """notify.publish sends each task's outcome to the master of its list's slot, and a subscriber
    on any master hears the PUBLISH."""
    from taskqueue import notify

    settings.TASKQUEUE_BROKER_URL = redis_cluster.url
    ids = [f"task-{i}" for i in range(20)]
    try:
        with notify.listen("task-7") as wait:
            notify.publish(ids, {"task-7": b"outcome"})
            heard = wait(5) or wait(5)  # the first wake may be the subscription's confirmation
            assert heard == b"outcome"
        for task_id in ids:
            waiter = notify._outcome_waiter(task_id)
            assert waiter(1) in (b"1", b"outcome")
    finally:
        nodes = notify._redis()[0]
        for master in nodes.masters():
            for one in list(master.scan_iter(match=f"{settings.TASKQUEUE_KEY_PREFIX}:outcome:task-*")):
                master.delete(one)
        notify.close()
        reset_broker()


def test_an_unreachable_cluster_fails_as_a_broker_outage():
    broker = create_broker("redis+cluster://127.0.0.1:1", "down")
    with pytest.raises(redis.ConnectionError):
        broker.publish([Outgoing("q", "k", b"x")])


def test_wait_replicas_waits_for_a_replica_of_the_queue_master(redis_cluster, settings):
    from taskqueue.brokers.redis import ReplicationError

    settings.TASKQUEUE_BROKER_TIMEOUT = 0.4  # WAIT gives up after half of it
    broker = create_broker(f"{redis_cluster.url}?wait_replicas=1", "replicas")
    try:
        with pytest.raises(ReplicationError):  # these masters have no replica
            broker.publish([Outgoing("q", "k", b"x")])
    finally:
        for master in broker.nodes.masters():
            for one in list(master.scan_iter(match="{replicas*")):
                master.delete(one)
        broker.close()


def test_a_queue_whose_slot_moves_to_another_master_is_followed(redis_cluster):
    """A resharding: the queue's keys go to another master. A publish is sent again there at once;
    a reserve (which must not run twice) fails once like an outage, then finds the new owner."""
    sender = create_broker(redis_cluster.url, "moving")
    stale = create_broker(redis_cluster.url, "moving")
    try:
        sender.publish([Outgoing("mv", "before", b"x")])
        assert stale.reserve("c", ["mv"], timeout=0) != []  # it knows where the queue is
        stale.leases(requeue=["c"])
        slot = redis_cluster.slot_of("{moving:mv}")
        owner = redis_cluster.node_of_slot(slot)
        redis_cluster.move_slot(slot, next(port for port in redis_cluster.ports if port != owner))
        sender.publish([Outgoing("mv", "after", b"x")])  # MOVED, map refreshed, sent again
        with pytest.raises(redis.ConnectionError):
            stale.reserve("c", ["mv"], count=5, timeout=0)
        assert [d.key for d in stale.reserve("c", ["mv"], count=5, timeout=0)] == ["before", "after"]
    finally:
        for master in sender.nodes.masters():
            for one in list(master.scan_iter(match="{moving*")):
                master.delete(one)
        sender.close()
        stale.close()


def test_a_cluster_with_a_password(settings):
    from tests.helpers import RedisClusterServer

    cluster = RedisClusterServer(password="s/cr@t").start()
    try:
        url = cluster.url.replace("s/cr@t", "s%2Fcr%40t")  # as a URL spells it
        broker = create_broker(url, "secret")
        broker.publish([Outgoing("a", "k1", b"x"), Outgoing("b", "k2", b"x")])
        assert [d.key for d in broker.reserve("c", ["a", "b"], count=5, timeout=0)] == ["k1", "k2"]
        settings.TASKQUEUE_BROKER_URL = url
        assert [p.id for p in checks.check_redis_durability()] == ["taskqueue.W003"]
        broker.close()
    finally:
        cluster.cleanup()
