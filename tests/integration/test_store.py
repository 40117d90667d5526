"""The result store: batch upserts, prepared statements on or off, outcomes carried by notifications."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.test import override_settings

from taskqueue import codecs, states, store
from taskqueue.codecs import Outcome
from taskqueue.conf import reset_settings
from tests.factories import MessageFactory

pytestmark = pytest.mark.any_broker  # the result store is the database's


def _outcome(value, state=states.SUCCESS):
    message = MessageFactory(args=(1, (2, 3)), kwargs={"when": Decimal("1.5")}, group_id="g-1", parent_id="p-1")
    return Outcome(message, state, value, hostname="store-test", started=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                   encoded=codecs.encode_value(value) if state == states.SUCCESS else None)


@pytest.mark.parametrize("prepared", [True, False])
def test_a_batch_is_stored_and_read_back(transactional_db, prepared):
    with override_settings(TASKQUEUE_PREPARED_STATEMENTS=prepared):
        reset_settings()
        outcomes = [_outcome({"n": i, "at": datetime(2026, 5, 6, tzinfo=UTC)}) for i in range(40)]
        outcomes.append(_outcome(ValueError("boom"), states.FAILURE))
        store.save_outcomes(outcomes)
        store.save_outcomes(outcomes[:2])  # a redelivered batch: updated, not duplicated
        for outcome in outcomes[:40]:
            row = store.fetch(outcome.message.id)
            assert row.state == states.SUCCESS and row.worker == "store-test" and row.group_id == "g-1"
            assert row.args == [1, {"__tq__": ["tuple", [2, 3]]}] and row.date_done is not None
            assert row.date_started == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        failed = store.fetch(outcomes[-1].message.id)
        assert failed.state == states.FAILURE and failed.result["exc_type"] == "ValueError"
    reset_settings()


def test_a_notification_carries_a_signed_outcome(transactional_db):
    outcome = _outcome([1, "two"])
    row = store.outcome_row(outcome)
    notice = codecs.notices([row])[row["task_id"]]
    carried = codecs.from_notice(row["task_id"], notice)
    assert carried.state == states.SUCCESS and carried.result == [1, "two"]
    assert codecs.from_notice("another-task", notice) is None  # bound to its task id
    forged = notice.replace(b"two", b"six")
    assert codecs.from_notice(row["task_id"], forged) is None


def test_large_outcomes_are_not_carried(transactional_db):
    row = store.outcome_row(_outcome("x" * 10_000))
    assert codecs.notices([row]) == {}


def test_a_chord_creates_pending_members_and_leaves_a_stored_row_alone(transactional_db):
    finished = _outcome(7)
    store.save_outcomes([finished])
    fresh = [str(uuid.uuid4()) for _ in range(600)]  # more than one statement's worth on SQLite
    members = [(finished.message.id, "tests.tasks.add"), *[(i, "tests.tasks.mul") for i in fresh]]
    store.create_chord("g-9", [(task_id, name, ((task_id, None), None)) for task_id, name in members],
                       {"task": "tests.tasks.add", "args": [], "kwargs": {}, "options": {}})
    kept = store.fetch(finished.message.id)
    assert kept.state == states.SUCCESS and kept.result == 7 and kept.group_id == "g-1"
    created = [store.fetch(task_id) for task_id in fresh]
    assert all(row.state == states.PENDING and row.task_name == "tests.tasks.mul" and row.group_id == "g-9"
               and row.date_created is not None for row in created)


def test_a_write_inside_atomic_commits_and_rolls_back_with_it(transactional_db):
    # Autocommitted batch writes go straight through libpq; inside atomic() they must not, or
    # they would commit on their own before the transaction does.
    from django.db import transaction

    kept, dropped = _outcome(1), _outcome(2)
    with transaction.atomic():
        store.save_outcomes([kept], publish=False)
    with pytest.raises(RuntimeError), transaction.atomic():
        store.save_outcomes([dropped], publish=False)
        raise RuntimeError("roll back")
    assert store.fetch(kept.message.id).state == states.SUCCESS
    assert store.fetch(dropped.message.id) is None


def test_a_failed_write_raises_a_database_error_and_the_connection_goes_on(transactional_db):
    from django.db import DatabaseError, connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite does not enforce a column's length")
    too_long = _outcome(1)
    too_long.message.task = "x" * 1000  # longer than the task_name column allows
    with pytest.raises(DatabaseError):
        store.save_outcomes([too_long])
    fine = _outcome(2)
    store.save_outcomes([fine])
    connection.close()  # a new connection prepares its statements again
    again = _outcome(3)
    store.save_outcomes([again])
    assert store.fetch(fine.message.id).result == 2 and store.fetch(again.message.id).result == 3


def test_the_write_prepares_its_statement_again_when_the_server_dropped_it(transactional_db):
    # As psycopg's DEALLOCATE ALL after a rollback (when it prepares statements itself) or a
    # pooler's DISCARD ALL would.
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the libpq write is PostgreSQL's")
    store.save_outcomes([_outcome(1)])
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    after = _outcome(2)
    store.save_outcomes([after])
    assert store.fetch(after.message.id).result == 2
    from taskqueue import sqlexec  # the worker's way too: SET LOCAL and EXECUTE in one query

    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    worker_write = _outcome(3)
    with sqlexec.visible_first():
        store.save_outcomes([worker_write])
    assert sqlexec.make_durable() and store.fetch(worker_write.message.id).result == 3


def test_a_late_duplicate_start_never_hides_a_finished_result(transactional_db):
    """A copy of a message delivered twice (RabbitMQ hands out again what a killed consumer held)
    may start after the other copy finished: its STARTED must not overwrite the SUCCESS a chord's
    body is about to read (it read None for that member in CI)."""
    message = MessageFactory()
    store.save_outcomes([Outcome(message=message, state=states.SUCCESS, result=3)])
    store.mark_started(message, "late@host", datetime.now(UTC))
    row = store.fetch(message.id)
    assert (row.state, row.result) == (states.SUCCESS, 3)
    fresh = MessageFactory()
    store.mark_started(fresh, "first@host", datetime.now(UTC))  # a first start still marks it
    assert store.fetch(fresh.id).state == states.STARTED


def _pg_lsn(cursor, function: str) -> int:
    cursor.execute(f"SELECT {function}() - '0/0'::pg_lsn")
    return int(cursor.fetchone()[0])


def test_a_worker_write_is_visible_at_once_and_on_disk_once_make_durable_returns(transactional_db):
    """The worker's result write commits without waiting for the disk (synchronous_commit off for
    that one transaction); make_durable, called before the ack, waits for a WAL flush past it."""
    from django.db import connection

    from taskqueue import sqlexec

    if connection.vendor != "postgresql":
        pytest.skip("the WAL is PostgreSQL's")
    outcome = _outcome(7)
    with sqlexec.visible_first():
        store.save_outcomes([outcome])
    with connection.cursor() as cursor:
        written = _pg_lsn(cursor, "pg_current_wal_insert_lsn")
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"  # only that write's own transaction skipped the wait
        assert store.fetch(outcome.message.id).result == 7  # committed: visible to everyone
        assert sqlexec.make_durable()
        assert _pg_lsn(cursor, "pg_current_wal_flush_lsn") >= written
    assert sqlexec.make_durable()  # nothing left to flush


def test_a_server_that_refuses_the_flush_gets_writes_that_wait_for_the_disk(transactional_db, monkeypatch):
    """Where pg_logical_emit_message is not allowed, make_durable says so (the worker writes that
    batch again) and later writes wait for the disk themselves."""
    from django.db import connection

    from taskqueue import sqlexec

    if connection.vendor != "postgresql":
        pytest.skip("the WAL is PostgreSQL's")
    monkeypatch.setattr(sqlexec, "_visible_first_works", True)  # restored after the test
    role = f"tq_no_flush_{uuid.uuid4().hex[:8]}"
    function = "pg_logical_emit_message(boolean, text, text)"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role}; GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}; "
                       f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}; "
                       f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC; SET ROLE {role}")
    try:
        first, second = _outcome(1), _outcome(2)
        with sqlexec.visible_first():
            store.save_outcomes([first])
        assert sqlexec.make_durable() is False
        with sqlexec.visible_first():
            store.save_outcomes([first, second])  # written again, as the worker does
        assert sqlexec.make_durable()  # nothing waits for a flush: the writes waited themselves
        assert store.fetch(second.message.id).result == 2
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"RESET ROLE; GRANT EXECUTE ON FUNCTION {function} TO PUBLIC; "
                           f"DROP OWNED BY {role}; DROP ROLE {role}")


def _queued_keys(broker, queue: str) -> list[str]:
    from taskqueue.models import QueuedMessage

    return list(QueuedMessage.objects.filter(queue=queue).values_list("key", flat=True))


def test_the_database_broker_acks_in_the_transaction_that_stores_the_outcome(transactional_db, monkeypatch):
    """With the queues in the results' database (the database broker on PostgreSQL), the worker's
    result write carries the ack: both commit in one transaction, neither waiting for the disk (a
    crash loses both or neither, and a message not acked runs again), so no flush is asked for."""
    from django.db import connections

    from taskqueue import sqlexec
    from taskqueue.brokers import Outgoing, create_broker

    connection = connections["default"]
    if connection.vendor != "postgresql":
        pytest.skip("the libpq write is PostgreSQL's")
    broker = create_broker("django://", f"rider-{uuid.uuid4().hex[:8]}")
    queue = f"rider-{uuid.uuid4().hex[:8]}"
    try:
        outcomes = [_outcome(5), _outcome(6)]
        broker.publish([Outgoing(queue, outcome.message.id, b"{}") for outcome in outcomes])
        deliveries = broker.reserve("rider-consumer", [queue], count=2, timeout=5)
        assert len(deliveries) == 2
        # a flush asked for now would fail, and make_durable would say False
        monkeypatch.setattr(sqlexec, "_FLUSH", b"SELECT taskqueue_no_such_function()")
        monkeypatch.setattr(sqlexec, "_visible_first_works", True)  # restored after the test
        rider = broker.ack_rider(deliveries)
        with connection.cursor() as cursor:
            cursor.execute("DEALLOCATE ALL")  # both statements prepared again, under new names
        with sqlexec.visible_first(rider):
            store.save_outcomes(outcomes)
        assert rider.rode
        assert _queued_keys(broker, queue) == []  # acked
        assert [store.fetch(outcome.message.id).result for outcome in outcomes] == [5, 6]
        assert sqlexec.make_durable()  # nothing left to flush
    finally:
        broker.close()


def test_an_outcome_write_whose_ack_fails_is_not_stored_either(transactional_db):
    """The ack and the write are one transaction: when the ack's statement fails, the outcome is
    not stored (and the next write of the block goes without the rider: the one-by-one writes
    after a failed batch must not ack the whole batch)."""
    from django.db import DatabaseError, connections

    from taskqueue import sqlexec

    connection = connections["default"]
    if connection.vendor != "postgresql":
        pytest.skip("the libpq write is PostgreSQL's")
    failing = sqlexec.Rider(connection, "SELECT 1 / (%s::int - 1)", ["1"])  # division by zero
    outcome, retried = _outcome(7), _outcome(8)
    with sqlexec.visible_first(failing):
        with pytest.raises(DatabaseError, match="division by zero"):
            store.save_outcomes([outcome])
        store.save_outcomes([retried])
    assert not failing.rode
    assert store.fetch(outcome.message.id) is None or store.fetch(outcome.message.id).state != states.SUCCESS
    assert store.fetch(retried.message.id).result == 8
    assert sqlexec.make_durable()  # the write without the rider is flushed as before


def test_a_settle_that_read_a_failed_chord_before_a_resume_does_not_fail_it_again(transactional_db):
    """Two settles read a chord failed; one claims it and fails the body; a resume reopens the chord;
    the other's claim, arriving late (it waited for SQLite's write lock), must find nothing to claim."""
    from django.db import transaction

    members = [str(uuid.uuid4()) for _ in range(3)]
    store.create_chord("g-late", [(task_id, "tests.tasks.add", ((task_id, None), None)) for task_id in members],
                       {"task": "tests.tasks.record_list", "args": [], "kwargs": {}, "options": {}})
    store.count_failed_member("g-late", members[1])
    first, late = store.chord_counter("g-late"), store.chord_counter("g-late")
    assert (first.state, late.state) == ("FAILURE", "FAILURE") and not late.body_sent
    assert first.claim()
    with transaction.atomic():
        store.reopen_chord("g-late", members[1])
    assert not late.claim()
    reopened = store.chord_counter("g-late")
    assert (reopened.state, reopened.body_sent, reopened.remaining) == ("PENDING", False, 3)
    store.count_failed_member("g-late", members[1])  # failed again: this resolution is claimed once
    again = store.chord_counter("g-late")
    assert again.claim() and not again.claim() and not first.claim()


def test_two_settles_that_read_a_chord_done_send_its_body_once(transactional_db, monkeypatch):
    """Two consumers count the last members of a chord at once and both read it done before
    either claims it: one sends the body (RabbitMQ would run a second copy: it keeps no key)."""
    from taskqueue import signals
    from taskqueue.models import ChordCounter
    from taskqueue.worker import continuation

    members = [str(uuid.uuid4()) for _ in range(2)]
    body_id = str(uuid.uuid4())
    store.create_chord("g-twice", [(task_id, "tests.tasks.add", ((task_id, None), None)) for task_id in members],
                       {"task": "tests.tasks.tsum", "args": [], "kwargs": {}, "options": {"task_id": body_id,
                                                                                       "queue": "settle-twice"}})
    ChordCounter.objects.count_finished("g-twice", 2)
    copies = [store.chord_counter("g-twice"), store.chord_counter("g-twice")]  # both read before either claims
    assert all(copy.state == "SUCCESS" and not copy.body_sent for copy in copies)
    monkeypatch.setattr(store, "chord_counter", lambda group_id: copies.pop())
    published = []

    def count(sender, headers=None, **kwargs):
        published.append(headers["id"])

    signals.before_task_publish.connect(count, weak=False)
    try:
        continuation.settle("g-twice")
        continuation.settle("g-twice")
    finally:
        signals.before_task_publish.disconnect(count)
    assert published == [body_id]
    assert ChordCounter.objects.get(group_id="g-twice").body_sent


def _chord_of_three(group_id: str) -> list[str]:
    members = [str(uuid.uuid4()) for _ in range(3)]
    store.create_chord(group_id, [(task_id, "tests.tasks.add", ((task_id, None), None)) for task_id in members],
                       {"task": "tests.tasks.record_list", "args": [], "kwargs": {}, "options": {}})
    return members


def test_a_revoked_chord_member_met_again_by_a_worker_is_counted_once(transactional_db):
    """The revoke counts the member; the worker that later meets its message (handed out marked
    revoked) must not count it again: the admin's `remaining` stays true."""
    from taskqueue.worker import continuation

    members = _chord_of_three("g-revoked-once")
    continuation.revoked(store.mark_revoked([members[0]]))
    assert (store.chord_counter("g-revoked-once").remaining, store.chord_counter("g-revoked-once").state) == (
        2, "FAILURE")
    continuation.resume(MessageFactory(id=members[0], chord={"group_id": "g-revoked-once"}))
    assert store.chord_counter("g-revoked-once").remaining == 2


def test_a_task_stopped_by_revoke_with_terminate_is_announced_revoked_once(transactional_db):
    """The worker that stops a revoked task where it runs sends task_revoked (terminated); a copy of
    its message met afterwards (RabbitMQ hands it out again once the killed process's connection
    closes) must not send it a second time, as it does for a task revoked while it waited."""
    from taskqueue import signals
    from taskqueue.brokers import Delivery, get_broker
    from taskqueue.conf import get_settings
    from taskqueue.exceptions import TaskRevokedError
    from taskqueue.message import encode
    from taskqueue.worker import continuation, execute

    message = MessageFactory()
    store.mark_revoked([message.id])  # revoke(terminate=True) of the running task
    seen = []

    def receiver(sender=None, request=None, terminated=None, **kwargs):
        seen.append((request.id, terminated))

    signals.task_revoked.connect(receiver)
    try:
        body = encode(message, get_settings().signing_key)
        execute.fail_killed(Delivery(message.id, body, "q", "killed-consumer"), body, "store-test",
                            TaskRevokedError("revoked with terminate: its process was stopped"), get_broker(),
                            signum=15)
        continuation.resume(message, "store-test")  # the copy, met by another consumer
    finally:
        signals.task_revoked.disconnect(receiver)
    assert seen == [(message.id, True)]
    row = store.fetch(message.id)
    assert row.state == states.REVOKED and row.result["exc_message"] == [
        "revoked with terminate: its process was stopped"]


def test_a_member_failed_twice_then_resumed_leaves_its_chord_waiting_for_the_rest(transactional_db):
    """A chain in a chord header that failed, redelivered, fails its later steps again (the member
    among them): counted twice, a resume of the chain would reopen the chord one member short, and
    the body would be sent while a member still runs."""
    from django.db import transaction

    members = _chord_of_three("g-failed-twice")
    store.count_failed_member("g-failed-twice", members[0])
    store.count_failed_member("g-failed-twice", members[0])  # the redelivery's fail_canvas
    for _ in range(2):  # a second reopen (a requeue sent again after its publish failed) undoes nothing more
        with transaction.atomic():
            store.reopen_chord("g-failed-twice", members[0])
        assert store.chord_counter("g-failed-twice").remaining == 3
    for member in members[1:]:
        done = Outcome(MessageFactory(id=member, chord={"group_id": "g-failed-twice"}), states.SUCCESS, 7,
                       hostname="store-test", encoded=codecs.encode_value(7))
        store.save_chord_members("g-failed-twice", [done])
    counter = store.chord_counter("g-failed-twice")
    assert (counter.state, counter.remaining) == ("PENDING", 1)  # members[0] runs again


def test_a_reopened_result_drops_the_outcome_kept_for_fresh_waiters(transactional_db):
    """A get() of a task sent moments ago blocks on its outcome list; once the failure is resumed
    (or its dead letter requeued) it must wait for the new attempt, not find the failure again."""
    from taskqueue import notify

    failed = _outcome(ValueError("boom"), states.FAILURE)
    store.save_outcomes([failed])
    kept = notify._outcome_list(failed.message.id)
    assert notify._own_client(kept).exists(kept)
    assert store.reopen_failed(failed.message.id)
    assert not notify._own_client(kept).exists(kept)
