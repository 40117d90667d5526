"""How the result pages write durations, times, ids and group states."""

from datetime import UTC, datetime, timedelta

from taskqueue.admin import display
from taskqueue.admin.groups import group_state


def test_durations_read_at_a_glance():
    assert display.duration(None) == "-"
    assert display.duration(timedelta(milliseconds=7.4)) == "7 ms"
    assert display.duration(timedelta(seconds=2.254)) == "2.25 s"
    assert display.duration(timedelta(seconds=125)) == "2 min 05 s"
    assert display.duration(timedelta(hours=3, minutes=4)) == "3 h 04 min"


def test_runtime_from_start_else_creation_and_only_when_done():
    created = datetime(2026, 1, 1, tzinfo=UTC)
    started, done = created + timedelta(seconds=1), created + timedelta(seconds=3)
    assert display.runtime(started, created, done) == timedelta(seconds=2)
    assert display.runtime(None, created, created + timedelta(seconds=3)) == timedelta(seconds=3)
    assert display.runtime(None, created, None) is None


def test_times_to_the_second_and_millisecond_aware_or_naive():
    moment = datetime(2026, 1, 2, 3, 4, 5, 678_900, tzinfo=UTC)
    assert ">2026-01-02 03:04:05<" in display.to_second(moment)
    assert display.to_millisecond(moment) == "2026-01-02 03:04:05.678 UTC"
    assert display.to_millisecond(moment.replace(tzinfo=None)) == "2026-01-02 03:04:05.678"


def test_short_ids_keep_the_whole_id_on_hover():
    assert display.short_id("0123456789abcdef") == (
        '<code title="0123456789abcdef" style="white-space:nowrap">01234567…</code>')
    assert ">short<" in display.short_id("short") and display.short_id(None) == "-"
    assert "&lt;b&gt;" in display.short_id("<b>")


def test_group_state_from_member_states():
    assert "group SUCCESS 3/3" in group_state({"SUCCESS": 3})
    assert "group FAILURE 2/3" in group_state({"SUCCESS": 1, "FAILURE": 1, "STARTED": 1})
    assert "group STARTED 1/3" in group_state({"SUCCESS": 1, "PENDING": 2})
    assert "group PENDING 0/2" in group_state({"PENDING": 2})
