"""Canvas semantics as Celery 5 has them, on a real worker (and the same shapes in eager mode):
nested shapes, lineage, callbacks, chord failures, empty and small canvases."""

import pytest

from taskqueue import AsyncResult, GroupResult, chain, chord, group
from taskqueue.exceptions import ChordError
from taskqueue.models import TaskResult
from taskqueue.testing import start_worker
from tests.helpers import wait_until
from tests.models import Run
from tests.tasks import add, echo, errback_label, fail, lineage, mul, record_list, tick, tsum, whoami


def _settled():
    """Anything the worker still had in flight for the test before this has been handled."""
    assert add.delay(0, 0).get(timeout=10) == 0


SHAPES = {  # name: (canvas, Celery's result)
    "chain of groups of chains": (lambda: chain(group(add.s(1, 1) | add.s(1), add.s(2, 2) | add.s(2)),
                                                group(tsum.s() | add.s(1), tsum.s() | add.s(2)), tsum.s()), 21),
    "group then group then task": (lambda: group(add.s(1, 1), add.s(2, 2)) | group(tsum.s(), tsum.s()) | tsum.s(),
                                   12),
    "group then chain": (lambda: group(add.s(1, 1), add.s(2, 2)) | chain(group(tsum.s(), mul.s(2)), record_list.s()),
                         [6, [2, 4, 2, 4]]),
    "chord in chain": (lambda: chain(add.s(1, 1), chord([add.s(1), add.s(2)], tsum.s()), add.s(1000)), 1007),
    "chain in chord header": (lambda: chord([add.s(1, 1) | add.s(1), add.s(2, 2)], tsum.s()), 7),
    "chain ending in a group in a chord header": (
        lambda: chord(group(chain(echo.s(42), group(echo.s(), echo.s()))), echo.s()), [[42, 42]]),
    "group in group": (lambda: group(add.s(0, 1), group(add.s(1, 1), add.s(1, 2), add.s(2, 2)), add.s(2, 3)),
                       [1, 2, 3, 4, 5]),
    "groups nested three deep": (lambda: group(add.si(1, 10), group(add.si(1, 100), group(add.si(1, 1000),
                                                                                          add.si(1, 2000)))),
                                 [11, 101, 1001, 2001]),
    "group in chord header": (lambda: chord([add.s(1, 1), group(add.s(2, 2), add.s(3, 3))], record_list.s()),
                              [2, 4, 6]),
    "mixed chord header in a group": (
        lambda: group([chord((echo.si(42), chain(echo.si(42), echo.si(42)), group(echo.si(42), echo.si(42)),
                              chord((echo.si(42), echo.si(42)), echo.si(1337))), echo.s())]),
        [[42, 42, 42, 42, 1337]]),
    "one-member group in a chain": (lambda: chain(add.s(1, 1), group(add.s(1)), add.s(1)), 4),
    "lone group in a chain": (lambda: chain(group(echo.s(42), echo.s(42))), [42, 42]),
    "group of a chain ending in a group": (lambda: group(add.s(1, 2) | group(add.s(1), add.s(2))), [4, 5]),
    "group of a chain of a group": (lambda: group([chain(group(echo.s(42), echo.s(42)))]), [42, 42]),
    "group in the middle of a chain": (lambda: chain(echo.s(42), group(echo.s(), echo.s()), echo.s()), [42, 42]),
    "group with a chain ending in a group": (lambda: chain(add.si(1, 0), group(add.si(1, 100), chain(
        add.si(1, 200), group(add.si(1, 1000), add.si(1, 2000)))), add.si(1, 10)), 11),
    "chain of chords": (lambda: add.si(1, 0) | group(add.s(1), add.s(1)) | tsum.s() | add.s(1)
                        | chord(group(add.s(1), add.s(1)), tsum.s()), 12),
    "chain of explicit chords": (lambda: chain(chord(group(add.si(1, 0), add.si(1, 0)), tsum.s()),
                                               chord(group(add.s(1), add.s(1)), tsum.s()),
                                               chord(group(add.s(10), add.s(10)), tsum.s())), 32),
    "chain chord chain chord": (lambda: chain(echo.si(1), chord([echo.si(2), chain(echo.si(3), chord(
        [echo.si(4), echo.si(5)], echo.si(6)))], echo.si(7))), 7),
    "chords in a chord header through chains": (lambda: chord(group([
        chain(add.si(1, 2), chord(group([add.si(1, 2), add.si(1, 2)]), add.si(1, 2))),
        chain(add.si(1, 2), chord(group([add.si(1, 2), add.si(1, 2)]), add.si(1, 2)))]), add.si(2, 2)), 4),
    "task, group, group, task": (lambda: add.si(1, 0) | group(add.s(1), add.s(1)) | group(tsum.s(), tsum.s())
                                 | tsum.s(), 8),
    "chain spliced into a chain": (lambda: add.s(2, 2) | (add.s(4) | add.s(8) | add.s(16)) | group(
        add.s(i) for i in range(3)), [32, 33, 34]),
    "group then chord then group": (lambda: group(add.s(1, 1), add.s(1, 1)) | tsum.s() | add.s(1)
                                    | group(add.s(1), add.s(1)), [6, 6]),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_nested_shapes_give_celerys_results(mode, name):
    canvas, expected = SHAPES[name]
    assert canvas().apply_async().get(timeout=30) == expected


def test_lone_task_and_first_step_are_their_own_root(worker):
    res = lineage.delay()
    info = res.get(timeout=10)
    assert info["root_id"] == res.id and info["parent_id"] is None
    assert TaskResult.objects.get(task_id=res.id).root_id == res.id
    c = chain(lineage.s(), lineage.s(), lineage.s())
    frozen = c.freeze()
    assert c.id == frozen.id
    res = c.apply_async()
    assert res.id == c.id
    third = res.get(timeout=10)
    second, first = res.parent.get(timeout=5), res.parent.parent.get(timeout=5)
    assert first["root_id"] == first["id"] == res.parent.parent.id
    assert second["root_id"] == third["root_id"] == first["id"]
    assert third["parent_id"] == second["id"] and second["parent_id"] == first["id"]
    rows = dict(TaskResult.objects.filter(task_id__in=[first["id"], second["id"], third["id"]])
                .values_list("task_id", "root_id"))
    assert set(rows.values()) == {first["id"]}


def test_chain_link_runs_after_the_last_step_only(mode):
    res = chain(add.s(1, 1), add.s(1), add.s(1)).apply_async(link=errback_label.s("chain-link"))
    assert res.get(timeout=10) == 4
    wait_until(lambda: Run.objects.filter(label="chain-link").exists(), timeout=10, message="link")
    _settled()
    assert list(Run.objects.filter(label="chain-link").values_list("task_id", flat=True)) == ["4"]


@pytest.mark.parametrize("how", ["on_error", "apply_async", "after |="])
def test_chain_link_error_fires_once_for_the_failing_step(mode, how):
    c = chain(add.s(1, 1), add.s(1), fail.s())
    if how == "on_error":
        c.on_error(errback_label.s("chain-eb"))
    elif how == "after |=":  # steps appended after the errback keep it on the first ones (Celery)
        c = chain(add.s(1, 1), fail.s()).on_error(errback_label.s("chain-eb"))
        c |= add.s(1)
        c |= mul.s(2)
    res = c.apply_async(link_error=errback_label.s("chain-eb")) if how == "apply_async" else c.apply_async()
    with pytest.raises(ValueError, match="boom"):
        res.get(timeout=10)
    failing = res if how != "after |=" else res.parent.parent
    wait_until(lambda: Run.objects.filter(label="chain-eb").exists(), timeout=10, message="errback")
    _settled()
    assert list(Run.objects.filter(label="chain-eb").values_list("task_id", flat=True)) == [failing.id]


def test_linking_twice_links_once(mode):
    sig = add.s(2, 2)
    sig.link(tick.si("linked-once"))
    sig.link(tick.si("linked-once"))
    assert sig.apply_async().get(timeout=10) == 4
    wait_until(lambda: Run.objects.filter(label="linked-once").exists(), timeout=10, message="link")
    _settled()
    assert Run.objects.filter(label="linked-once").count() == 1


def test_chord_header_failure_is_a_chord_error_and_the_body_errback_fires_once(mode):
    body = record_list.s().on_error(errback_label.s("body-eb"))
    res = chord([add.s(1, 1), fail.s(), add.s(2, 2)], body)()
    failed = res.parent.results[1].id
    with pytest.raises(ChordError) as raised:
        res.get(timeout=20)
    assert str(raised.value) == f"Dependency {failed} raised ValueError('boom')"
    assert isinstance(AsyncResult(res.id).result, ChordError) and AsyncResult(res.id).state == "FAILURE"
    wait_until(lambda: Run.objects.filter(label="body-eb").exists(), timeout=10, message="body errback")
    _settled()
    assert list(Run.objects.filter(label="body-eb").values_list("task_id", flat=True)) == [res.id]


def test_chord_followed_by_tasks_extends_its_body(mode):
    sig = chord([add.s(1, 1), add.s(2, 2)], tsum.s()) | add.s(10) | mul.s(2)
    assert isinstance(sig, chord)
    res = sig()
    assert res.get(timeout=20) == 32 and res.parent.get(timeout=5) == 16
    sig = group(add.s(1, 1), add.s(2, 2)) | tsum.s() | mul.s(3)
    assert isinstance(sig, chord) and isinstance(sig.body, chain)
    assert sig().get(timeout=20) == 18


def test_empty_and_small_canvases(mode):
    assert chain().apply_async() is None
    empty = group([]).apply_async()
    assert isinstance(empty, GroupResult) and empty.results == [] and empty.get(timeout=5) == []
    assert repr(empty) == f"<GroupResult: {empty.id} []>" and repr(group([])) == "group(<empty>)"
    assert chain(add.s(1, 1), group([])).apply_async().get(timeout=10) == 2
    assert chain(add.s(1, 1), add.s(1), group([]), group([])).apply_async().get(timeout=10) == 3
    assert (echo.s(5) | add.chunks([(1, 1), (2, 2), (3, 3)], 2))().get(timeout=20) == [[2, 4], [6]]
    assert (echo.s(5) | add.starmap([(2, 2), (4, 4)]))().get(timeout=20) == [4, 8]
    assert (echo.s(5) | tsum.map([[1, 2], [3]]))().get(timeout=20) == [3, 3]


def test_skewed_group_runs_every_member(mode):
    res = group(add.s(i, i) for i in range(3)).skew(start=0.05, step=0.05)()
    assert res.get(timeout=20) == [0, 2, 4]


def test_a_chords_own_options_and_its_call_options_reach_its_header_and_body(worker):
    # Celery's _chord.run: dict(chord.options, **call options) goes to the header's tasks and the body;
    # the shared worker (default queue) would run a body sent anywhere else
    own = chord([whoami.si(), whoami.si()], whoami.si(), queue="chordopts", priority=4).apply_async()
    called = chord([whoami.si()], whoami.si(), queue="chordopts-nobody", priority=4).apply_async(
        queue="chordopts-call", priority=6)
    other = start_worker("-c", "1", "-Q", "chordopts,chordopts-call")
    try:
        ran = [own.get(timeout=20), *own.parent.get(timeout=5), called.get(timeout=20), *called.parent.get(timeout=5)]
    finally:
        other.terminate()
    assert [(r["queue"], r["priority"]) for r in ran] == [("chordopts", 4)] * 3 + [("chordopts-call", 6)] * 2


def test_each_task_of_a_chain_of_groups_runs_exactly_once(mode):
    # Celery's documentation promises one run per task; its chain-of-groups bug runs some several times
    res = chain(group(tick.si("cg-a"), tick.si("cg-b")), group(tick.si("cg-c"), tick.si("cg-d")),
                group(tick.si("cg-e"), tick.si("cg-f")), tick.si("cg-g")).apply_async()
    assert res.get(timeout=30) == "cg-g"
    _settled()
    labels = sorted(Run.objects.filter(label__startswith="cg-").values_list("label", flat=True))
    assert labels == ["cg-a", "cg-b", "cg-c", "cg-d", "cg-e", "cg-f", "cg-g"]
