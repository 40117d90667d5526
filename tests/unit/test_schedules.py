from datetime import UTC, datetime, timedelta

from taskqueue.schedules import crontab_next, crontab_slot, due_slot, interval_slot

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_interval_slots_are_anchored():
    every = timedelta(seconds=5)
    assert interval_slot(T0, every, T0 + timedelta(seconds=4)) is None
    assert interval_slot(T0, every, T0 + timedelta(seconds=5)) == T0 + timedelta(seconds=5)
    assert interval_slot(T0, every, T0 + timedelta(seconds=12)) == T0 + timedelta(seconds=10)


def test_missed_runs_are_sent_once_after_downtime():
    every = timedelta(seconds=5)
    last = T0 + timedelta(seconds=5)
    slot = interval_slot(T0, every, T0 + timedelta(minutes=10, seconds=2))
    assert due_slot(slot, last, T0) == T0 + timedelta(minutes=10)  # one run for the latest slot
    assert due_slot(slot, slot, T0) is None  # and not again


def test_crontab_in_a_time_zone():
    now = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)  # 10:30 in Paris
    slot = crontab_slot("0 10 * * *", "Europe/Paris", now)
    assert slot.astimezone(UTC) == datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    assert crontab_slot("30 10 * * *", "Europe/Paris", now).astimezone(UTC) == now  # an exact match counts
    assert crontab_next("0 10 * * *", "Europe/Paris", now).astimezone(UTC) == datetime(2026, 1, 2, 9, 0, tzinfo=UTC)


def test_slots_before_the_schedule_was_defined_never_run():
    assert due_slot(T0, None, T0 + timedelta(seconds=1)) is None
    assert due_slot(T0 + timedelta(seconds=2), None, T0) == T0 + timedelta(seconds=2)
