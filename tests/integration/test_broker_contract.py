"""The broker contract: every broker must pass these same tests (parametrised by broker name)."""

import time
import uuid

import pytest

from taskqueue.brokers import create_broker
from tests.helpers import wait_until

pytestmark = pytest.mark.any_broker  # each test runs on both brokers already (the `broker` fixture's params)


@pytest.fixture(params=["redis", "django"])
def broker(request, transactional_db):
    prefix = f"contract-{uuid.uuid4().hex[:8]}"
    if request.param == "django":
        instance = create_broker("django://", prefix)
        yield instance
        instance.close()
        return
    instance = create_broker(request.getfixturevalue("redis_url"), prefix)
    yield instance
    client = instance.client
    keys = list(client.scan_iter(match=f"{instance.prefix}:*"))
    if keys:
        client.delete(*keys)
    instance.close()


def test_fifo_per_queue_and_ack(broker):
    for i in range(3):
        broker.publish("q", f"k{i}", f"body{i}".encode())
    got = broker.reserve("c1", ["q"], count=2, timeout=0)
    assert [d.key for d in got] == ["k0", "k1"] and got[0].body == b"body0" and got[0].queue == "q"
    assert broker.body("k1") == b"body1" and broker.body("k2") == b"body2"  # in flight, and queued
    broker.ack(got)
    assert not broker.contains("k0") and broker.contains("k2") and broker.body("k0") is None
    assert [d.key for d in broker.reserve("c1", ["q"], timeout=0)] == ["k2"]
    assert broker.reserve("c1", ["q"], timeout=0) == []


def test_queues_are_read_in_the_order_given(broker):
    broker.publish("low", "l1", b"x")
    broker.publish("high", "h1", b"x")
    assert [d.key for d in broker.reserve("c", ["high", "low"], count=5, timeout=0)] == ["h1", "l1"]


LONG_WAIT = 30  # a reserve() that waited out a timeout this long would have missed the event it waits for


def _reserve_before_its_timeout(broker, queue: str) -> list:
    """reserve() with a long timeout; what it returns, failing if it only returned at that timeout."""
    deadline = time.monotonic() + LONG_WAIT
    got = broker.reserve("c", [queue], timeout=LONG_WAIT)
    assert time.monotonic() < deadline, "reserve() returned at its timeout, not when the message was there"
    return got


def test_eta_hides_a_message_until_due(broker):
    broker.publish("q", "later", b"x", eta=time.time() + 0.4)
    assert broker.reserve("c", ["q"], timeout=0) == []
    assert broker.contains("later")
    assert [d.key for d in _reserve_before_its_timeout(broker, "q")] == ["later"]  # woken when due


def test_idle_reserve_wakes_on_publish(broker):
    import threading

    timer = threading.Timer(0.2, lambda: broker.publish("q", "wake", b"x"))
    timer.start()
    assert [d.key for d in _reserve_before_its_timeout(broker, "q")] == ["wake"]  # woken by the publish


def test_a_woken_consumer_takes_one_of_a_burst(broker):
    """Two idle consumers woken by three messages must not end up with all three in one batch: the
    first takes one, and the next in line (idle or back from its task) takes the rest in order."""
    import threading

    burst = [("q", f"b{i}", b"x", None, 0) for i in range(3)]
    timer = threading.Timer(0.2, lambda: broker.publish_many(burst))
    timer.start()
    woken = broker.reserve("c1", ["q"], count=5, timeout=5)
    timer.join()
    assert [d.key for d in woken] == ["b0"]
    assert [d.key for d in broker.reserve("c2", ["q"], count=5, timeout=0)] == ["b1", "b2"]


def test_release_puts_back_now_or_after_a_delay(broker):
    broker.publish("q", "k", b"x")
    (delivery,) = broker.reserve("c", ["q"], timeout=0)
    broker.release(delivery)
    (again,) = broker.reserve("c2", ["q"], timeout=0)
    assert again.key == "k" and again.redeliveries == 0
    broker.release(again, delay=0.3)
    assert broker.reserve("c", ["q"], timeout=0) == []
    assert [d.key for d in broker.reserve("c", ["q"], timeout=2)] == ["k"]


def test_stale_consumer_messages_are_recovered_and_live_ones_kept(broker):
    broker.publish("q", "dead", b"x")
    broker.publish("q", "alive", b"x")
    broker.reserve("dead-consumer", ["q"], timeout=0)
    broker.reserve("live-consumer", ["q"], timeout=0)
    time.sleep(0.3)  # let both leases age; then only the live consumer renews
    broker.heartbeat(["live-consumer"])
    assert broker.recover(stale_after=0.2) == 1
    (back,) = broker.reserve("other", ["q"], timeout=0)
    assert back.key == "dead" and back.redeliveries == 1
    assert broker.recover(stale_after=0.2) == 0


def test_recover_named_consumer_at_once(broker):
    broker.publish("q", "k", b"x")
    broker.reserve("c", ["q"], timeout=0)
    assert broker.recover(60, ["c"]) == 1
    assert [d.key for d in broker.reserve("c2", ["q"], timeout=0)] == ["k"]


def test_purge_and_sizes(broker):
    for i in range(3):
        broker.publish("a", f"a{i}", b"x")
    broker.publish("b", "b0", b"x")
    assert broker.sizes() == {"a": 3, "b": 1}
    assert broker.purge("a") == 3
    assert broker.sizes().get("a", 0) == 0 and broker.sizes()["b"] == 1 and not broker.contains("a0")


def test_publish_many(broker):
    broker.publish_many([("q", f"m{i}", b"x", None, 0) for i in range(5)])
    assert len(broker.reserve("c", ["q"], count=10, timeout=0)) == 5


def test_lock_is_exclusive_and_freed_by_a_dead_owner(broker):
    broker.heartbeat(["owner"])
    assert broker.acquire_lock("k", "owner", stale_after=0.3)
    assert not broker.acquire_lock("k", "other", stale_after=0.3)
    broker.release_lock("k", "owner")
    assert broker.acquire_lock("k", "other", stale_after=0.3)
    broker.heartbeat(["other"])
    assert wait_until(lambda: broker.acquire_lock("k", "third", stale_after=0.3), timeout=3,
                      message="lock of a silent owner freed")


def test_cancelled_tasks_are_never_handed_out(broker):
    broker.publish("q", "t1", b"x")
    broker.publish("q", "t1~2", b"x", eta=time.time() + 0.2)  # a later attempt of the same task
    broker.publish("q", "t2", b"x")
    broker.cancel("t1", ttl=60)
    assert [d.key for d in broker.reserve("c", ["q"], count=5, timeout=0)] == ["t2"]
    assert broker.reserve("c", ["q"], count=5, timeout=1) == []
    assert not broker.contains("t1") and not broker.contains("t1~2")


@pytest.mark.redis_only
def test_redis_keeps_queue_names_and_caps_wake_tokens(redis_url):
    broker = create_broker(redis_url, f"contract-{uuid.uuid4().hex[:8]}")
    try:
        with pytest.raises(ValueError, match="invalid queue name"):
            broker.publish("bad\nname", "k", b"x")
        for i in range(100):
            broker.publish("q", f"k{i}", b"x")
        assert broker.client.llen(f"{broker.prefix}:wake:q") == 64
        broker.client.delete(f"{broker.prefix}:queues")  # as after a Redis flush: named again a while later
        broker._announced["q"] -= 120
        broker.publish("q", "again", b"x")
        assert broker.sizes() == {"q": 101}
    finally:
        keys = list(broker.client.scan_iter(match=f"{broker.prefix}:*"))
        if keys:
            broker.client.delete(*keys)
        broker.close()


@pytest.mark.redis_only
def test_redis_broker_reloads_its_scripts_after_a_script_flush(redis_url):
    from tests.helpers import RedisServer

    server = RedisServer().start()  # a private server: never flush the shared one's scripts
    broker = create_broker(server.url, "reload")
    try:
        broker.publish("q", "first", b"x")
        broker.client.script_flush()
        broker.publish_many([("q", "a", b"x", None, 0), ("q", "b", b"x", None, 0)])
        broker.client.script_flush()
        assert [d.key for d in broker.reserve("c", ["q"], count=5, timeout=0)] == ["first", "a", "b"]
    finally:
        broker.close()
        server.stop()


def test_a_give_back_after_an_outage_is_not_counted_as_a_redelivery(broker):
    broker.publish("q", "k", b"body")
    broker.reserve("c", ["q"], timeout=0)
    assert broker.recover(60, ["c"], redelivered=False) == 1
    [again] = broker.reserve("c", ["q"], timeout=0)
    assert again.redeliveries == 0
    assert broker.recover(60, ["c"]) == 1  # a consumer that died: counted
    assert broker.reserve("c", ["q"], timeout=0)[0].redeliveries == 1


def test_terminations_name_the_running_tasks_revoked_with_terminate(broker):
    broker.cancel("plain", 60)
    broker.cancel("stop-me", 60, terminate="SIGTERM")
    broker.cancel("signal-me", 60, terminate="SIGUSR1")
    assert broker.terminations(["plain", "stop-me", "signal-me", "other"]) == {
        "stop-me": "SIGTERM", "signal-me": "SIGUSR1"}


def test_published_remembers_the_keys_sent_with_remember(broker):
    broker.publish("q", "remembered", b"body", remember=60)
    broker.publish_many([("q", "also", b"body", None, 0)], remember=60)
    broker.publish("q", "plain", b"body")
    expected = {"remembered", "also"} if broker.__class__.__name__ == "RedisBroker" else set()
    assert broker.published(["remembered", "also", "plain"]) == expected  # the database broker needs no outbox
