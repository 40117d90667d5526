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
