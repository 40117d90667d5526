"""The broker contract: every broker must pass these same tests (parametrised by broker name)."""

import contextlib
import threading
import time
import uuid
from collections import defaultdict

import pytest
import redis

from taskqueue import control
from taskqueue.brokers import Broker, Outgoing, create_broker
from taskqueue.brokers.keys import SCHEMA, key, lua_prelude
from tests.helpers import delete_amqp_topology, held, wait_until

# Each test runs on every broker (the `broker` fixture's params: Redis, the database, the Redis
# broker on a Redis Cluster, and RabbitMQ). The first three do not depend on the run's broker and
# run in the Redis-broker runs; RabbitMQ's run in the RabbitMQ run only, so its quorum queues are
# made once per CI, not in every pass. The redis_only tests below look at one Redis server's keys,
# scripts and script cache; tests/integration/test_redis_cluster.py checks the cluster's.

# What a broker cannot do, by test: RabbitMQ cannot be read or reordered by message key, and takes
# back a dead consumer's messages itself when its connection closes (tests/e2e and tests/faults
# show that on RabbitMQ with real workers).
_UNREADABLE = "RabbitMQ cannot look a message up by key (docs/brokers.md)"
_CONNECTION_BOUND = "RabbitMQ takes a consumer's messages back when its connection closes, not by lease"
NOT_ON: dict[str, dict[str, str]] = defaultdict(dict, {
    "test_higher_priorities_first_and_a_long_wait_counts_as_priority": {
        "amqp": "RabbitMQ has priority bands, not aging (test_amqp_priority_bands)"},
    "test_stale_consumer_messages_are_recovered_and_live_ones_kept": {"amqp": _CONNECTION_BOUND},
    "test_inspect_tells_each_queue_in_flight_delayed_oldest_and_pages_what_waits": {"amqp": _UNREADABLE},
    "test_inspect_remembers_the_keys_sent_with_remember": {
        "amqp": "the outbox rows of a confirmed publish are deleted at once (test_amqp_outbox_rows)"},
})


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.any_broker) for name in ("redis", "django", "cluster")]
                + [pytest.param("amqp", marks=pytest.mark.amqp_only)])
def broker(request, transactional_db):
    prefix = f"contract-{uuid.uuid4().hex[:8]}"
    if request.param in NOT_ON[request.node.originalname]:
        pytest.skip(NOT_ON[request.node.originalname][request.param])
    if request.param in ("django", "amqp"):
        url = "django://" if request.param == "django" else request.getfixturevalue("amqp_url")
        instance = create_broker(url, prefix, priority_aging=1.0)
        yield instance
        if request.param == "amqp":
            delete_amqp_topology(instance)
        instance.close()
        return
    if request.param == "cluster":  # a 3-master Redis Cluster this session started
        instance = create_broker(request.getfixturevalue("redis_cluster").url, prefix, priority_aging=1.0)
        yield instance
        for master in instance.nodes.masters():
            keys = list(master.scan_iter(match=f"{{{prefix}*"))
            for one in keys:  # one by one: they are in different slots
                master.delete(one)
        instance.close()
        return
    instance = create_broker(request.getfixturevalue("redis_url"), prefix, priority_aging=1.0)
    yield instance
    client = instance.client
    keys = list(client.scan_iter(match=f"{instance.prefix}:*"))
    if keys:
        client.delete(*keys)
    instance.close()


@pytest.mark.any_broker
def test_the_contract_is_nine_methods():
    assert len(Broker.__abstractmethods__) == 9


def test_fifo_per_queue_and_ack(broker):
    broker.publish([Outgoing("q", f"k{i}", f"body{i}".encode()) for i in range(3)])
    got = broker.reserve("c1", ["q"], count=2, timeout=0)
    assert [d.key for d in got] == ["k0", "k1"] and got[0].body == b"body0" and got[0].queue == "q"
    if broker.reads_by_key:
        assert broker.inspect(["k1", "k2"]).bodies == {"k1": b"body1", "k2": b"body2"}  # in flight, and queued
    broker.ack(got)
    if broker.reads_by_key:
        assert broker.inspect(["k0", "k2"]).bodies == {"k2": b"body2"}
    assert [d.key for d in broker.reserve("c1", ["q"], timeout=0)] == ["k2"]
    assert broker.reserve("c1", ["q"], timeout=0) == []


def test_higher_priorities_first_and_a_long_wait_counts_as_priority(broker):
    """Aging of 1 s per level (the fixture's): a priority-0 message ready 10 s ago goes before a
    priority-9 one sent now; after it, higher priorities first."""
    now = time.time()
    broker.publish([Outgoing("q", "p0", b"x"), Outgoing("q", "p9", b"x", priority=9),
                    Outgoing("q", "p5", b"x", priority=5), Outgoing("q", "waited", b"x", eta=now - 10),
                    Outgoing("q", "p9-later", b"x", priority=9)])
    taken = broker.reserve("c", ["q"], count=2, timeout=0)
    assert [d.key for d in taken] == ["waited", "p9"]
    broker.release(taken)  # back in their places
    assert [d.key for d in broker.reserve("c", ["q"], count=5, timeout=0)] == ["waited", "p9", "p9-later", "p5", "p0"]


def test_queues_are_read_in_the_order_given(broker):
    broker.publish([Outgoing("low", "l1", b"x"), Outgoing("high", "h1", b"x")])
    assert [d.key for d in broker.reserve("c", ["high", "low"], count=5, timeout=0)] == ["h1", "l1"]


def test_sends_held_for_the_next_reserve_go_with_it_or_at_the_end(broker):
    """`sends_with_next_reserve`: a publish inside the block is taken by the reserve that follows
    it there (Redis: in the same script), or sent when the block ends; either way it is queued
    once, and no idle consumer is left a wake token for a message already taken."""
    with broker.sends_with_next_reserve():
        broker.publish([Outgoing("q", "step", b"x")])
        assert [d.key for d in broker.reserve("c", ["q"], timeout=2)] == ["step"]
    assert broker.reserve("c2", ["q"], timeout=0) == []
    if isinstance(getattr(broker, "client", None), redis.Redis):  # the Redis broker's own keys
        assert broker.client.llen(key(broker.prefix, "wake", "q")) == 0
    with broker.sends_with_next_reserve():
        broker.publish([Outgoing("q", "unclaimed", b"x"), Outgoing("q", "unclaimed", b"x")])
    assert [d.key for d in broker.reserve("c2", ["q"], count=5, timeout=2)] == ["unclaimed"]


LONG_WAIT = 30  # a reserve() that waited out a timeout this long would have missed the event it waits for


def _reserve_before_its_timeout(broker, queue: str) -> list:
    """reserve() with a long timeout; what it returns, failing if it only returned at that timeout."""
    deadline = time.monotonic() + LONG_WAIT
    got = broker.reserve("c", [queue], timeout=LONG_WAIT)
    assert time.monotonic() < deadline, "reserve() returned at its timeout, not when the message was there"
    return got


def test_eta_hides_a_message_until_due(broker):
    broker.publish([Outgoing("q", "later", b"x", eta=time.time() + 0.4)])
    assert broker.reserve("c", ["q"], timeout=0) == []
    assert held(broker, "later") or not broker.reads_by_key
    assert [d.key for d in _reserve_before_its_timeout(broker, "q")] == ["later"]  # woken when due


def test_idle_reserve_wakes_on_publish(broker):
    timer = threading.Timer(0.2, lambda: broker.publish([Outgoing("q", "wake", b"x")]))
    timer.start()
    assert [d.key for d in _reserve_before_its_timeout(broker, "q")] == ["wake"]  # woken by the publish


def test_a_woken_consumer_takes_one_of_a_burst(broker):
    """Two idle consumers woken by three messages must not end up with all three in one batch: the
    first takes one, and the next in line (idle or back from its task) takes the rest in order."""
    burst = [Outgoing("q", f"b{i}", b"x") for i in range(3)]
    timer = threading.Timer(0.2, lambda: broker.publish(burst))
    timer.start()
    woken = broker.reserve("c1", ["q"], count=5, timeout=5)
    timer.join()
    assert [d.key for d in woken] == ["b0"]
    assert [d.key for d in broker.reserve("c2", ["q"], count=5, timeout=0)] == ["b1", "b2"]


def test_release_puts_back_now_or_after_a_delay(broker):
    broker.publish([Outgoing("q", "k", b"x")])
    (delivery,) = broker.reserve("c", ["q"], timeout=0)
    broker.release([delivery])
    (again,) = broker.reserve("c2", ["q"], timeout=0)
    assert again.key == "k" and again.redeliveries == 0
    broker.release([again], delay=0.3)
    assert broker.reserve("c", ["q"], timeout=0) == []
    assert [d.key for d in broker.reserve("c", ["q"], timeout=2)] == ["k"]


def test_stale_consumer_messages_are_recovered_and_live_ones_kept(broker):
    broker.publish([Outgoing("q", "dead", b"x"), Outgoing("q", "alive", b"x")])
    broker.reserve("dead-consumer", ["q"], timeout=0)
    broker.reserve("live-consumer", ["q"], timeout=0)
    time.sleep(0.3)  # let both leases age; then only the live consumer renews
    assert broker.leases(["live-consumer"], stale_after=0.2).requeued == 1
    (back,) = broker.reserve("other", ["q"], timeout=0)
    assert back.key == "dead" and back.redeliveries == 1
    # renewed before they are judged, the live ones are kept however long the lines above took
    assert broker.leases(["live-consumer", "other"], stale_after=0.2).requeued == 0


def test_requeue_a_named_consumer_at_once(broker):
    broker.publish([Outgoing("q", "k", b"x")])
    broker.reserve("c", ["q"], timeout=0)
    assert broker.leases(requeue=["c"]) == (1, {})
    assert [d.key for d in broker.reserve("c2", ["q"], timeout=0)] == ["k"]


def test_inspect_sizes_and_purge(broker, monkeypatch):
    broker.publish([Outgoing("a", f"a{i}", b"x") for i in range(3)] + [Outgoing("b", "b0", b"x")])
    assert broker.inspect().sizes == {"a": 3, "b": 1}
    monkeypatch.setattr(control, "get_broker", lambda: broker)  # this test's broker, with its own prefix
    assert control.purge("a") == 3
    assert broker.inspect(["a0", "b0"]).sizes.get("a", 0) == 0 and broker.inspect().sizes["b"] == 1
    assert list(broker.inspect(["a0", "b0"]).bodies) == (["b0"] if broker.reads_by_key else [])
    assert broker.reserve("c", ["q", "a", "b"], count=5, timeout=0)[0].key == "b0"


def test_lock_is_exclusive_and_freed_by_a_dead_owner(broker):
    broker.leases(["owner"])
    assert broker.lock("k", "owner", stale_after=0.3)
    assert not broker.lock("k", "other", stale_after=0.3)
    broker.lock("k", "owner", None)
    assert broker.lock("k", "other", stale_after=0.3)
    broker.leases(["other"])
    assert wait_until(lambda: broker.lock("k", "third", stale_after=0.3), timeout=3,
                      message="lock of a silent owner freed")


def test_cancelled_tasks_are_handed_out_marked_revoked(broker):
    broker.publish([Outgoing("q", "t1", b"x"), Outgoing("q", "t1~2", b"x", eta=time.time() + 0.2),  # a later attempt
                    Outgoing("q", "t2", b"x")])
    broker.cancel("t1", ttl=60)
    taken = broker.reserve("c", ["q"], count=5, timeout=0)
    broker.ack(taken)
    if len(taken) == 2:  # the later attempt still waits for its eta (the database broker makes it due now)
        taken += broker.reserve("c", ["q"], count=5, timeout=2)
        broker.ack(taken[2:])
    assert sorted((d.key, d.revoked) for d in taken) == [("t1", True), ("t1~2", True), ("t2", False)]
    assert broker.reserve("c", ["q"], count=5, timeout=0) == []
    assert broker.inspect(["t1", "t1~2"]).bodies == {}  # acked: gone, where the broker can tell


@pytest.mark.redis_only
@pytest.mark.any_broker
def test_redis_keeps_queue_names_and_caps_wake_tokens(redis_url):
    broker = create_broker(redis_url, f"contract-{uuid.uuid4().hex[:8]}")
    try:
        with pytest.raises(ValueError, match="invalid queue name"):
            broker.publish([Outgoing("bad\nname", "k", b"x")])
        broker.publish([Outgoing("q", f"k{i}", b"x") for i in range(100)])
        assert broker.client.llen(f"{broker.prefix}:wake:q") == 100
        broker.publish([Outgoing("q", f"more{i}", b"x") for i in range(29)])
        assert broker.client.llen(f"{broker.prefix}:wake:q") == 64  # the 129th cut them to 64
        broker.client.delete(f"{broker.prefix}:queues")  # as after a Redis flush: named again a while later
        broker._announced["q"] -= 120
        broker.publish([Outgoing("q", "again", b"x")])
        assert broker.inspect().sizes == {"q": 130}
    finally:
        keys = list(broker.client.scan_iter(match=f"{broker.prefix}:*"))
        if keys:
            broker.client.delete(*keys)
        broker.close()


@pytest.mark.redis_only
@pytest.mark.any_broker
def test_redis_broker_reloads_its_scripts_after_a_script_flush(redis_url):
    from tests.helpers import RedisServer

    server = RedisServer().start()  # a private server: never flush the shared one's scripts
    broker = create_broker(server.url, "reload")
    try:
        broker.publish([Outgoing("q", "first", b"x")])
        broker.client.script_flush()
        broker.publish([Outgoing("q", "a", b"x"), Outgoing("q", "b", b"x")])
        broker.client.script_flush()
        assert [d.key for d in broker.reserve("c", ["q"], count=5, timeout=0)] == ["first", "a", "b"]
    finally:
        broker.close()
        server.stop()


def test_a_give_back_after_an_outage_is_not_counted_as_a_redelivery(broker):
    broker.publish([Outgoing("q", "k", b"body")])
    broker.reserve("c", ["q"], timeout=0)
    assert broker.leases(requeue=["c"], redelivered=False).requeued == 1
    [again] = broker.reserve("c", ["q"], timeout=0)
    assert again.redeliveries == 0
    assert broker.leases(requeue=["c"]).requeued == 1  # a consumer that died: counted
    assert broker.reserve("c", ["q"], timeout=0)[0].redeliveries == 1


def test_terminations_name_the_running_tasks_revoked_with_terminate(broker):
    broker.cancel("plain", 60)
    broker.cancel("stop-me", 60, terminate="SIGTERM")
    broker.cancel("signal-me", 60, terminate="SIGUSR1")
    assert broker.leases(running=["plain", "stop-me", "signal-me", "other"]).terminations == {
        "stop-me": "SIGTERM", "signal-me": "SIGUSR1"}


def test_inspect_remembers_the_keys_sent_with_remember(broker):
    broker.publish([Outgoing("q", "remembered", b"body"), Outgoing("q", "also", b"body")], remember=60)
    broker.publish([Outgoing("q", "plain", b"body")])
    broker.ack(broker.reserve("c", ["q"], timeout=0))  # remembered after the ack too
    expected = set() if broker.__class__.__name__ == "DatabaseBroker" else {"remembered", "also"}
    assert broker.inspect(["remembered", "also", "plain"]).published == expected  # the database broker needs no outbox


@pytest.mark.redis_only
@pytest.mark.any_broker
def test_python_and_lua_name_the_same_keys(redis_url):
    client = redis.Redis.from_url(redis_url)
    try:
        names = [name for name, (pattern, _) in SCHEMA.items()]
        lua = lua_prelude() + "return {" + ", ".join(
            f"{name}_key('part')" if "{}" in SCHEMA[name][0] else f"{name}_key" for name in names) + "}"
        assert [k.decode() for k in client.eval(lua, 0, "pfx")] == [key("pfx", name, "part") for name in names]
    finally:
        client.close()


def test_inspect_tells_each_queue_in_flight_delayed_oldest_and_pages_what_waits(broker):
    before = time.time()
    broker.publish([Outgoing("q", f"k{i}", b"x") for i in range(4)]
                   + [Outgoing("q", "later", b"x", eta=time.time() + 60), Outgoing("r", "r0", b"x")])
    [taken] = broker.reserve("c", ["q"], timeout=0)
    seen = broker.inspect(holders=True)
    assert seen.sizes == {"q": 3, "r": 1}
    assert seen.inflight == {"q": 1} and seen.later == {"q": 1}
    assert set(seen.oldest) == {"q", "r"} and before - 1 <= seen.oldest["q"] <= time.time() + 1
    assert broker.inspect(queue="q", offset=0, limit=2).waiting == ["k1", "k2"]
    assert broker.inspect(queue="q", offset=2, limit=5).waiting == ["k3"]
    assert broker.inspect(queue="q").waiting == [] and taken.key == "k0"  # no page asked, none read


def test_no_queues_takes_nothing_and_waits_out_the_timeout(broker):
    """A consumer whose queues are all paused reserves from none."""
    broker.publish([Outgoing("q", "k", b"x")])
    started = time.monotonic()
    assert broker.reserve("c", [], count=5, timeout=0.2) == []
    assert time.monotonic() - started >= 0.19
    assert [d.key for d in broker.reserve("c", ["q"], timeout=1)] == ["k"]


def _hold_sqlite_write_lock(connection):
    """Another connection to the test's SQLite file, holding its write lock until it is closed."""
    import sqlite3

    other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0, isolation_level=None,
                            check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


@contextlib.contextmanager
def _sqlite_writer_busy_for(connection, seconds: float):
    """Another connection writing to the test's SQLite file for `seconds`, then done: its write
    lock is held when the block starts and released while it runs."""
    other = _hold_sqlite_write_lock(connection)
    release = threading.Timer(seconds, other.rollback)
    try:
        release.start()
        yield
    finally:
        release.join(5)
        other.close()


@pytest.mark.any_broker
def test_a_sqlite_publish_waits_for_the_write_lock_and_then_goes_in(transactional_db):
    """The database broker's publish on SQLite tries again while another connection writes (every
    50-500 us rather than SQLite's 1, 2, 5... ms), and goes in once the lock is free."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock")
    broker = create_broker("django://", f"contract-{uuid.uuid4().hex[:8]}")
    try:
        broker.publish([Outgoing("q", "first", b"x")])  # the connection is open
        with _sqlite_writer_busy_for(connection, 0.2):
            broker.publish([Outgoing("q", "second", b"x")])
        assert sorted(d.key for d in broker.reserve("c", ["q"], count=5, timeout=0)) == ["first", "second"]
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            assert cursor.fetchone()[0] > 0  # the connection's own timeout is back
    finally:
        broker.close()


@pytest.mark.any_broker
def test_a_sqlite_claim_waits_for_the_write_lock_as_promptly_as_a_publish(transactional_db):
    """A consumer woken by a ring often finds the sender still writing: its claim tries again every
    50-500 us (with SQLite's busy handler off, the connection's timeout restored after) rather than
    sleeping 1, 2, 5... ms, and takes the message once the lock is free."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock")
    broker = create_broker("django://", f"contract-{uuid.uuid4().hex[:8]}")
    seen: list[str] = []
    try:
        broker.publish([Outgoing("q", "k", b"x")])
        with _sqlite_writer_busy_for(connection, 0.2):  # the sender, still writing for a while
            connection.connection.set_trace_callback(seen.append)
            try:
                assert [d.key for d in broker.reserve("c", ["q"], count=5, timeout=0)] == ["k"]
            finally:
                connection.connection.set_trace_callback(None)
        claims = [i for i, sql in enumerate(seen) if sql.lstrip().upper().startswith("UPDATE")]
        switches = [i for i, sql in enumerate(seen) if sql.startswith("PRAGMA busy_timeout = ")]
        assert claims and switches and seen[switches[0]] == "PRAGMA busy_timeout = 0"
        assert switches[0] < claims[0] and claims[-1] < switches[-1] and seen[switches[-1]] != "PRAGMA busy_timeout = 0"
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            assert cursor.fetchone()[0] > 0  # the connection's own timeout is back
    finally:
        broker.close()


@pytest.mark.any_broker
def test_a_sqlite_publish_gives_up_after_the_connection_s_busy_timeout(transactional_db):
    """A lock held longer than the connection's busy timeout: "database is locked", as without
    the retries, and that timeout is kept."""
    from django.db import OperationalError, connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock")
    broker = create_broker("django://", f"contract-{uuid.uuid4().hex[:8]}")
    try:
        broker.publish([Outgoing("q", "first", b"x")])
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            configured = cursor.fetchone()[0]
            cursor.execute("PRAGMA busy_timeout = 300")
        other = _hold_sqlite_write_lock(connection)
        try:
            started = time.monotonic()
            with pytest.raises(OperationalError, match="locked"):
                broker.publish([Outgoing("q", "second", b"x")])
            assert 0.3 <= time.monotonic() - started < 5
        finally:
            other.close()
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout")
            assert cursor.fetchone()[0] == 300
            cursor.execute(f"PRAGMA busy_timeout = {configured}")
        assert [d.key for d in broker.reserve("c", ["q"], count=5, timeout=0)] == ["first"]
    finally:
        broker.close()


@pytest.mark.any_broker
def test_on_sqlite_only_the_publish_waits_for_the_disk(transactional_db):
    """The database broker on SQLite (WAL): the producer's publish commits at the connection's own
    synchronous level (the caller is told the task is queued); a consumer's claim, its outcome
    writes and its ack at NORMAL (no disk sync each: a power loss takes back only a suffix of the
    log, so never an ack without the results before it), and the level is restored after each."""
    from django.db import connection

    from taskqueue import codecs, states, store
    from taskqueue.codecs import Outcome
    from tests.factories import MessageFactory

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's synchronous setting")
    broker = create_broker("django://", f"contract-{uuid.uuid4().hex[:8]}")
    seen: list[str] = []
    try:
        broker.publish([Outgoing("q", "warm", b"x")])  # the connection is open
        raw = connection.connection
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        level = raw.execute("PRAGMA synchronous").fetchone()[0]
        assert level == 2  # FULL, SQLite's default here
        raw.set_trace_callback(seen.append)
        broker.publish([Outgoing("q", "k", b"x")])
        published = list(seen)
        seen.clear()
        [delivery] = [d for d in broker.reserve("c", ["q"], count=5, timeout=0) if d.key == "k"]
        claimed = list(seen)
        seen.clear()
        message = MessageFactory()
        with broker.writes_before_ack():
            store.save_outcomes([Outcome(message, states.SUCCESS, 3, hostname="h", encoded=codecs.encode_value(3))])
        broker.ack([delivery])
        stored_and_acked = list(seen)
    finally:
        connection.connection.set_trace_callback(None)
        broker.close()

    def at_normal(statements: list[str], word: str) -> bool:
        """Whether the statements starting with `word` all run between a switch to NORMAL and the restore."""
        normal = False
        found = False
        for sql in statements:
            if sql.startswith("PRAGMA synchronous = "):
                normal = sql.endswith("NORMAL")
            elif sql.lstrip().upper().startswith(word):
                found = True
                if not normal:
                    return False
        return found and not normal  # restored at the end

    assert not any("synchronous =" in sql for sql in published) and any("INSERT" in sql for sql in published)
    assert at_normal(claimed, "UPDATE")
    assert at_normal(stored_and_acked, "INSERT") and at_normal(stored_and_acked, "DELETE")
    assert connection.connection.execute("PRAGMA synchronous").fetchone()[0] == level
    assert store.fetch(message.id).state == states.SUCCESS


@pytest.mark.any_broker
def test_a_busy_database_consumer_reads_its_notifications(transactional_db):
    """A consumer that always finds messages never waits, so it never read its LISTEN connection:
    unread NOTIFYs filled the socket, and the server's backend, waiting to send them inside a
    transaction, held back the xmin horizon (no vacuum; dead rows piled up at the queue's head and
    each reserve got slower). Each reserve on PostgreSQL now reads what came before it."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's (SQLite's doorbell is a datagram socket)")
    broker = create_broker("django://", f"contract-{uuid.uuid4().hex[:8]}")
    try:
        assert broker.reserve("c1", ["q"], timeout=0) == []  # listening from here on
        for index in range(20):
            broker.publish([Outgoing("q", f"k{index}", b"x")])  # a NOTIFY each
        broker._listener.listen().execute("SELECT 1")  # a round trip there delivers every one sent before
        for _ in range(20):
            broker.ack(broker.reserve("c1", ["q"], timeout=0))
        assert list(broker._listener.listen().notifies(timeout=0)) == []
    finally:
        broker.close()


def test_a_database_consumer_vacuums_the_queue_table_when_its_dead_rows_pile_up(transactional_db, monkeypatch):
    """Each message taken and acked leaves dead rows, and the claims' index keeps their entries at
    the head of the queue until a vacuum: every claim walked past all of them (in a chord of 100,000
    members a claim read 57 index pages at the start, 454 near the end). Autovacuum comes too late
    for a queue, so a consumer that took CHECK_EVERY messages vacuums the table, in a thread of its
    own, once its dead rows pass DEAD_ROWS and a tenth of the live ones."""
    from django.db import connection

    from taskqueue.brokers import dbsweep

    if connection.vendor != "postgresql":
        pytest.skip("SQLite leaves no dead rows behind a delete")
    monkeypatch.setattr(dbsweep, "CHECK_EVERY", 50)
    monkeypatch.setattr(dbsweep, "DEAD_ROWS", 100)

    def vacuums() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'taskqueue_queuedmessage'")
            return cursor.fetchone()[0]

    before = vacuums()
    broker = create_broker("django://", f"contract-{uuid.uuid4().hex[:8]}")
    try:
        def take_and_ack_more() -> bool:
            broker.publish([Outgoing("q", uuid.uuid4().hex, b"x") for _ in range(100)])
            while taken := broker.reserve("c1", ["q"], count=20, timeout=0):
                broker.ack(taken)
            return vacuums() > before

        # the statistics the consumer reads reach the server's view within about a second
        wait_until(take_and_ack_more, timeout=30, interval=0.1, message="a vacuum of the queue table")
        broker._sweeper._thread.join(10)
    finally:
        broker.close()


@pytest.mark.any_broker
def test_an_idle_database_consumer_that_heard_nothing_looks_again_only_when_it_must(transactional_db, monkeypatch):
    """On PostgreSQL every publish, release and requeue notifies its queue, so a consumer whose last
    reserve found nothing and heard nothing does not look again (a claim and a look for the next
    due message every half second were a third of an idle worker's CPU) until something is due or
    QUIET_LOOK_EVERY has passed, for a notification lost with a connection. A row put in behind
    the broker's back, with no NOTIFY, shows both; a publish is taken at once."""
    from django.db import connection
    from django.utils import timezone

    from taskqueue.brokers import database
    from taskqueue.models import QueuedMessage

    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    monkeypatch.setattr(database, "QUIET_LOOK_EVERY", 1.0)
    broker = create_broker("django://", f"contract-{uuid.uuid4().hex[:8]}")
    try:
        assert broker.reserve("c1", ["q"], timeout=0.1) == []  # found nothing, heard nothing
        QueuedMessage.objects.create(key="silent", task_id="silent", queue="q", body="x",
                                     available_at=timezone.now())
        assert broker.reserve("c1", ["q"], timeout=0.1) == []  # no look: nothing was heard
        started = time.monotonic()
        [found] = wait_until(lambda: broker.reserve("c1", ["q"], timeout=0.1), timeout=5,
                             message="the silent row taken at the next look")
        assert found.key == "silent" and time.monotonic() - started < 3
        broker.ack([found])
        assert broker.reserve("c1", ["q"], timeout=0.1) == []
        broker.publish([Outgoing("q", "heard", b"x")])
        assert [d.key for d in broker.reserve("c1", ["q"], timeout=1)] == ["heard"]
    finally:
        broker.close()


@pytest.mark.any_broker
def test_a_release_for_later_tells_an_idle_database_consumer_when_to_look(transactional_db, monkeypatch):
    """A message given back with a delay is notified too: a consumer that had found nothing learns
    when it falls due, and takes it then, long before its next look of its own."""
    from django.db import connection

    from taskqueue.brokers import database

    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    monkeypatch.setattr(database, "QUIET_LOOK_EVERY", 60.0)
    broker = create_broker("django://", f"contract-{uuid.uuid4().hex[:8]}")
    try:
        broker.publish([Outgoing("q", "k", b"x")])
        [held_by_c1] = broker.reserve("c1", ["q"], timeout=1)
        assert broker.reserve("c2", ["q"], timeout=0.1) == []  # nothing ready for c2: it is quiet
        released = time.monotonic()
        broker.release([held_by_c1], delay=0.3)
        [taken] = wait_until(lambda: broker.reserve("c2", ["q"], timeout=0.2), timeout=10,
                             message="the released message taken by c2")
        assert taken.key == "k" and 0.25 <= time.monotonic() - released < 5
    finally:
        broker.close()


def test_get_listens_only_while_it_waits(transactional_db):
    """get() on results in PostgreSQL listens while it waits and stops after (a process that called
    get() once would otherwise keep every finished task's NOTIFY unread, as above); the result of a
    task that has finished is read without listening at all."""
    from taskqueue import AsyncResult, notify, states
    from taskqueue.exceptions import TimeoutError
    from tests.factories import TaskResultFactory

    if notify._kind() != "postgres":
        pytest.skip("waiters listen on PostgreSQL only with the database or RabbitMQ broker")
    waiting = TaskResultFactory(state=states.PENDING, result=None, date_done=None)
    with pytest.raises(TimeoutError):
        AsyncResult(waiting.task_id).get(timeout=0.2)
    listener = notify._pg_listener()
    conn = listener._local.conn  # this thread's LISTEN connection, kept open
    assert conn.execute("SELECT pg_listening_channels()").fetchall() == []
    listened = listener.generation
    finished = TaskResultFactory()
    assert AsyncResult(finished.task_id).get(timeout=5) == 4
    assert listener.generation == listened  # no LISTEN for it
    with pytest.raises(TimeoutError):
        AsyncResult(waiting.task_id).get(timeout=0.2)
    assert listener.generation == listened + 1  # and it listens again when it waits again
    assert conn.execute("SELECT pg_listening_channels()").fetchall() == []
