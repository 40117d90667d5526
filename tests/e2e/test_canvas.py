"""The canvas against a real worker and in eager mode: the same shapes, the same results."""

import json

import pytest
from django.db import connection

from taskqueue import GroupResult, chain, chord, group, result_from_tuple, signature, states
from taskqueue.exceptions import ChordError
from taskqueue.models import ChordCounter, TaskResult
from tests.helpers import start_workers, wait_until
from tests.models import Run
from tests.tasks import (
    add,
    check_device,
    errback_label,
    fail,
    mul,
    notify_user,
    post_process,
    post_to_risk_api,
    record_list,
    save_login_event,
    slow_add,
    tsum,
)


def test_chain_passes_each_result_on(mode):
    res = chain(add.s(4, 4), mul.s(8), mul.s(10))()
    assert res.get(timeout=20) == 640
    assert res.parent.get(timeout=5) == 64 and res.parent.parent.get(timeout=5) == 8


def test_group_of_chains_after_a_task(mode):
    assert (add.s(5, 6) | group(add.s(1) | add.s(2), add.s(3)))().get(timeout=20) == [14, 14]


def test_chord_sums_its_header(mode):
    assert chord((add.s(i, i) for i in range(10)), tsum.s())().get(timeout=20) == 90


def test_group_results_in_definition_order(mode):
    assert group(add.s(i, i) for i in range(10))().get(timeout=20) == list(range(0, 20, 2))


def test_chunks_map_and_starmap(mode):
    chunked = add.chunks(zip(range(100), range(100)), 10)().get(timeout=20)
    assert len(chunked) == 10 and chunked[0] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert ~tsum.map([range(10), range(100)]) == [45, 4950]
    assert ~add.starmap([(2, 2), (4, 4)]) == [4, 8]
    assert add.chunks([(1, 1), (2, 2), (3, 3)], 2).group()().get(timeout=20) == [[2, 4], [6]]


def test_failing_step_stops_a_chain(mode):
    res = chain(add.s(1, 2), fail.s(), add.s(3, 4))()
    with pytest.raises(ValueError, match="boom"):
        res.get(timeout=20)
    assert res.state == states.FAILURE  # the third step is marked failed, it never ran
    assert res.parent.state == states.FAILURE and res.parent.parent.get(timeout=5) == 3


def test_empty_and_tiny_groups_and_chords(mode):
    assert group([])().get(timeout=5) == []
    assert chord([], tsum.s())().get(timeout=20) == 0
    assert chord([add.s(1, 1)], record_list.s())().get(timeout=20) == [2]


def test_nested_canvases(mode):
    # chord in a chord header, chain and group inside a header (unrolled into it, as in Celery)
    inner = chord([add.s(1, 1), add.s(2, 2)], tsum.s())
    header = [inner, add.s(1, 2) | mul.s(10), group(add.s(5, 5), add.s(6, 6))]
    res = chord(header, record_list.s())()
    assert res.get(timeout=30) == [6, 30, 10, 12]
    # consecutive groups: the second receives the first one's results
    second = (group(add.s(1, 1), add.s(2, 2)) | group(tsum.s(), record_list.s()))()
    assert second.get(timeout=30) == [6, [2, 4]]
    # a chain body after a chord, then more steps
    res = (group(add.s(i, i) for i in range(4)) | tsum.s() | add.s(100) | mul.s(2))()
    assert res.get(timeout=30) == 224
    # chord whose body is itself a chord's input through a chain
    res = chain(add.s(1, 1), chord([add.s(1), add.s(2)], tsum.s()), add.s(1000))()
    assert res.get(timeout=30) == 1007


def test_signature_dicts_round_trip_through_json():
    canvas = chain(add.s(1, 1), group(add.s(2), chord([add.s(3), add.s(4)], tsum.s())), mul.s(2).on_error(
        errback_label.s("e")))  # the group followed by mul is a chord, as in Celery
    again = signature(json.loads(json.dumps(canvas)))
    assert again == canvas and type(again) is chain
    assert isinstance(again.tasks[1], chord) and isinstance(again.tasks[1].tasks[1], chord)
    assert again.tasks[1].body.options["link_error"][0]["args"] == ["e"]


def test_partial_arguments_and_options(mode):
    partial = add.s(2)
    assert partial.delay(4).get(timeout=20) == 6
    assert add.s(2, 3).clone().apply_async().get(timeout=20) == 5
    assert add.si(1, 1).apply_async((100,)).get(timeout=20) == 2  # immutable ignores new args
    sig = mul.s(3).set(countdown=0)
    assert (add.s(1, 1) | sig)().get(timeout=20) == 6


def test_group_result_api(mode):
    res = group(add.s(1, 1), fail.s(), add.s(2, 2))()
    with pytest.raises(ValueError):
        res.join(timeout=20)
    assert res.join(timeout=20, propagate=False)[0] == 2
    assert res.ready() and res.failed() and not res.successful() and not res.waiting()
    assert res.completed_count() == 2
    restored = GroupResult.restore(res.id)
    assert [r.id for r in restored] == [r.id for r in res]
    tuple_form = json.loads(json.dumps(res.as_tuple()))
    assert result_from_tuple(tuple_form) == res
    restored.delete()
    assert GroupResult.restore(res.id) is None


def test_results_keep_their_lineage_in_columns(mode):
    res = chain(add.s(1, 1), add.s(1), add.s(1))()
    assert res.get(timeout=20) == 4
    first = res.parent.parent
    from taskqueue import AsyncResult

    assert AsyncResult(res.id).parent.id == res.parent.id  # from the stored parent_id column
    assert [c.id for c in AsyncResult(first.id).children] == [res.parent.id]
    chained = json.loads(json.dumps(res.as_tuple()))
    assert result_from_tuple(chained).parent.parent.id == first.id


def test_login_workflow_of_the_talk(mode):
    workflow = chain(check_device.s(7, "phone"), group(notify_user.s(), save_login_event.s()),
                     post_to_risk_api.s(), post_process.s())
    res = workflow()
    assert res.get(timeout=30) == "verdict:low:2"
    assert res.parent.get(timeout=5) == {"risk": "low", "inputs": 2}
    walked = res.parent.parent
    assert isinstance(walked, GroupResult) and walked.join(timeout=5)[1] == {"saved": "phone", "fail_at": None}
    assert walked.parent.get(timeout=5)["device"] == "phone"


@pytest.mark.parametrize("fail_at, expected", [
    ("check", {"task-level": 1, "group-level": 0, "chain-level": 1}),
    ("notify", {"task-level": 0, "group-level": 1, "chain-level": 1}),
    ("risk", {"task-level": 0, "group-level": 0, "chain-level": 1}),
])
def test_login_workflow_error_handlers_fire_once(mode, fail_at, expected):
    workflow = chain(
        check_device.s(7, "phone", fail_at).on_error(errback_label.s("task-level")),
        group(notify_user.s(), save_login_event.s()).on_error(errback_label.s("group-level")),
        post_to_risk_api.s(),
        post_process.s(),
    ).on_error(errback_label.s("chain-level"))
    res = workflow()
    with pytest.raises(ChordError if fail_at == "notify" else ValueError, match="failed|down"):
        res.get(timeout=30)
    wait_until(lambda: all(Run.objects.filter(label=k).count() >= v for k, v in expected.items()), timeout=10,
               message="error handlers")
    assert add.delay(0, 0).get(timeout=10) == 0  # anything still in flight has been handled by now
    assert {k: Run.objects.filter(label=k).count() for k in expected} == expected


def test_chord_with_a_failing_member(mode):

    header = [slow_add.s(1, 1, 2.0), fail.s(), slow_add.s(2, 2, 2.0)]
    res = chord(header, record_list.s()).on_error(errback_label.s("chord-errback"))()
    failed_id = res.parent.results[1].id
    with pytest.raises(ChordError, match=f"^Dependency {failed_id} raised ValueError\\('boom'\\)$"):
        res.get(timeout=20)
    if mode == "worker":  # woken by the failure itself, not after the slow members
        assert TaskResult.objects.get(task_id=res.parent.results[1].id).state == states.FAILURE
        assert not res.parent.results[0].ready() and not res.parent.results[2].ready()
    assert "ValueError: boom" in res.traceback  # the failed member's traceback, as in Celery
    wait_until(lambda: Run.objects.filter(label="chord-errback").exists(), timeout=10, message="errback")
    assert add.delay(0, 0).get(timeout=10) == 0
    assert Run.objects.filter(label="chord-errback").count() == 1
    assert not Run.objects.filter(label="body").exists()
    assert ChordCounter.objects.get(group_id=res.parent.id).state == "FAILURE"


def test_big_chord(worker):
    res = chord((add.s(i, 0) for i in range(1000)), tsum.s())()
    assert res.get(timeout=120) == 499500
    # The body is sent before the counter is marked (a crash in between resends it), so the mark
    # may land just after the body's result.
    wait_until(lambda: ChordCounter.objects.get(group_id=res.parent.id).body_sent, timeout=5, message="body_sent")
    counter = ChordCounter.objects.get(group_id=res.parent.id)
    assert counter.remaining == 0 and counter.state == "SUCCESS"


def test_revoked_member_resolves_the_chord(worker):
    res = chord([add.s(1, 1), add.si(2, 2).set(countdown=5)], record_list.s())()
    res.parent.results[1].revoke()
    with pytest.raises(Exception, match="revoked"):
        res.get(timeout=10)
    assert not Run.objects.filter(label="body").exists()


def test_a_chain_step_revoked_before_it_is_sent_fails_the_steps_after_it(worker):
    res = chain(add.si(1, 1).set(countdown=1), add.si(2, 2), add.si(3, 3))()
    res.parent.revoke()  # the middle step: its message is sent once the first step succeeds
    with pytest.raises(Exception, match="revoked"):
        res.get(timeout=15)
    assert res.parent.parent.get(timeout=5) == 2
    assert res.parent.state == states.REVOKED and res.state == states.FAILURE


def test_a_chain_revoked_while_it_waits_in_a_chord_header_fails_the_chord(worker):
    res = chord([chain(add.si(1, 1).set(countdown=1), add.si(2, 2)), add.si(3, 3)], record_list.s())()
    head = res.parent.results[0].parent  # the chain's first step, waiting for its countdown
    head.revoke()
    with pytest.raises(Exception, match="revoked"):
        res.get(timeout=15)
    assert res.parent.results[0].state == states.FAILURE
    assert not Run.objects.filter(label="body").exists()


@pytest.mark.slow
def test_chord_survives_a_worker_killed_halfway(transactional_db, broker_url):
    from taskqueue.models import TaskResult

    first, second = start_workers(("-c", "4", "-Q", "chordkill"), ("-c", "4", "-Q", "chordkill"))
    try:
        header = [slow_add.s(i, 0, 0.05).set(queue="chordkill") for i in range(200)]
        res = chord(header, record_list.s().set(queue="chordkill"))()
        group_id = res.parent.id
        wait_until(lambda: TaskResult.objects.filter(group_id=group_id, state="SUCCESS").count() >= 100,
                   timeout=30, message="half the header done")
        first.kill()
        assert res.get(timeout=60) == list(range(200))
        wait_until(lambda: Run.objects.filter(label="body").exists(), timeout=5, message="body row")
        assert add.apply_async((0, 0), queue="chordkill").get(timeout=10) == 0
        assert Run.objects.filter(label="body").count() == 1
    finally:
        first.kill()
        second.terminate()


def test_a_chain_step_starts_while_the_step_before_is_still_being_stored(worker):
    """As in Celery, a success's next chain step is sent before its result is written: the next
    step runs (on the other consumer, or on this one in the same batch) while the first write waits
    (here on an advisory lock the test holds, through a trigger on that one row's SUCCESS)."""
    from tests.tasks import record_echo

    if connection.vendor != "postgresql":
        pytest.skip("holds the write with a PostgreSQL trigger")
    canvas = chain(add.s(1, 1), record_echo.s(12))  # the second step runs as record_echo(2, 12)
    res = canvas.freeze()
    table = TaskResult._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"""
            CREATE FUNCTION tq_test_hold_write() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_advisory_xact_lock(424242); RETURN NEW; END $$;
            CREATE TRIGGER tq_test_hold_write BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW
            WHEN (NEW.task_id = '{res.parent.id}' AND NEW.state = 'SUCCESS') EXECUTE FUNCTION tq_test_hold_write();
            SELECT pg_advisory_lock(424242);""")
    try:
        assert canvas.apply_async().id == res.id
        wait_until(lambda: Run.objects.filter(task_id=res.id).exists(), timeout=10,
                   message="the second step ran ...")
        assert TaskResult.objects.get(task_id=res.parent.id).state != states.SUCCESS  # ... the first not stored yet
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT pg_advisory_unlock(424242); DROP TRIGGER tq_test_hold_write ON {table};"
                           "DROP FUNCTION tq_test_hold_write();")
    assert res.get(timeout=10) == 12
    assert res.parent.get(timeout=10) == 2
