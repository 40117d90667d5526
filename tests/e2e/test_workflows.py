"""Workflows in the admin against a real worker: the graph of a canvas (pending nodes included,
large fan-outs collapsed, bounded queries), resuming a failed chain step or chord member, and
"Retry selected"; both refused to view-only staff."""

import re

import pytest

from taskqueue import AsyncResult, chain, chord, group, states, store
from taskqueue.exceptions import ChordError
from taskqueue.models import ChordCounter, TaskResult
from tests.helpers import wait_until
from tests.models import Run
from tests.tasks import add, errback_label, fail, fail_with, fails_until_fixed, record_list, tsum


def _fix(label: str) -> None:
    Run.objects.create(label=f"fixed:{label}")


def _failed(task_id: str, timeout: float = 20) -> TaskResult:
    return wait_until(lambda: TaskResult.objects.filter(task_id=task_id, state=states.FAILURE).first(),
                      timeout=timeout, message=f"{task_id} FAILURE")


def _resume(client, task_id: str) -> str:
    """The messages the admin answered a resume with."""
    row = TaskResult.objects.get(task_id=task_id)
    page = client.post(f"/admin/taskqueue/taskresult/{row.pk}/resume/", follow=True).content.decode()
    return " ".join(re.findall(r'<li class="(?:success|warning|error)">([^<]*)', page))


def _states_on_page(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-task-id="([^"]+)" data-state="([^"]+)"', html))


def test_resume_a_failed_chain_step_continues_the_chain(worker, admin_client):
    res = chain(add.s(1, 2), fails_until_fixed.s("chain-step"), add.s(10), add.s(100))()
    second = res.parent.parent
    with pytest.raises(ValueError, match="not fixed yet"):
        res.get(timeout=20)
    failed = _failed(second.id)
    page = admin_client.get(f"/admin/taskqueue/taskresult/{failed.pk}/workflow/").content.decode()
    assert "Resume from here" in page and "never ran" in page  # the later steps, stored as never run
    _fix("chain-step")
    answer = _resume(admin_client, second.id)
    assert "again; what followed it runs" in answer, answer
    # fresh results: the ones above keep the FAILURE they read (a ready row is final for them)
    assert AsyncResult(res.id).get(timeout=20) == 113 and AsyncResult(res.parent.id).get(timeout=5) == 13
    assert Run.objects.filter(label="ran:chain-step").count() == 2  # the failed attempt and the resumed one
    again = _resume(admin_client, second.id)
    assert "Not resumed" in again, again  # it is SUCCESS now


def test_resume_a_failed_task_runs_its_link_callback_once(worker, admin_client):
    """The same callbacks: a link= of the failed task runs when the resumed attempt succeeds, once;
    its link_error ran for the failure and does not run again."""
    sent = fails_until_fixed.apply_async(([1, 2, 3], "linked"), link=record_list.s(label="linked-callback"),
                                         link_error=errback_label.s("linked-errback"))
    _failed(sent.id)
    wait_until(lambda: Run.objects.filter(label="linked-errback").exists(), timeout=10, message="errback ran")
    assert not Run.objects.filter(label="linked-callback").exists()
    _fix("linked")
    answer = _resume(admin_client, sent.id)
    assert "again; what followed it runs" in answer, answer
    assert AsyncResult(sent.id).get(timeout=20) == [1, 2, 3]
    callback = wait_until(lambda: Run.objects.filter(label="linked-callback").first(), timeout=10,
                          message="the link ran after the resume")
    assert callback.task_id == "3"  # given the resumed attempt's result
    assert add.delay(1, 1).get(timeout=10) == 2  # a later task done: a second callback would have run by now
    assert Run.objects.filter(label="linked-callback").count() == 1
    assert Run.objects.filter(label="linked-errback").count() == 1
    assert Run.objects.filter(label="ran:linked").count() == 2  # the failed attempt and the resumed one


def test_resume_a_failed_chord_member_completes_the_chord_once(worker, admin_client):
    res = chord([add.s(1, 1), fails_until_fixed.s(5, "member"), add.s(2, 2)], record_list.s(label="chord-body"))()
    with pytest.raises(ChordError, match="not fixed yet"):
        res.get(timeout=20)
    counter = ChordCounter.objects.get()
    member_id = counter.member_ids[1]
    _failed(member_id)
    assert counter.state == ChordCounter.FAILURE and counter.body_sent
    _fix("member")
    answer = _resume(admin_client, member_id)
    assert "again; what followed it runs" in answer, answer
    assert AsyncResult(res.id).get(timeout=20) == [2, 5, 4]
    counter = wait_until(lambda: ChordCounter.objects.filter(body_sent=True).first(), timeout=5)  # sent, then marked
    assert (counter.state, counter.remaining) == (ChordCounter.SUCCESS, 0)
    assert Run.objects.filter(label="chord-body").count() == 1  # the body ran once


def test_retry_selected_reruns_each_failed_task(worker, admin_client, view_only_client):
    first, second = fails_until_fixed.delay(1, "lone-a"), fails_until_fixed.delay(2, "lone-b")
    done = add.delay(1, 1)
    rows = [_failed(first.id), _failed(second.id)]
    assert done.get(timeout=10) == 2
    selected = [row.pk for row in rows] + [TaskResult.objects.get(task_id=done.id).pk]
    _fix("lone-a"), _fix("lone-b")
    refused = view_only_client.post("/admin/taskqueue/taskresult/", {"action": "retry_selected",
                                                                     "_selected_action": selected})
    assert refused.status_code in (200, 302)
    assert view_only_client.post(f"/admin/taskqueue/taskresult/{rows[0].pk}/resume/").status_code == 403
    for view, shown in (("workflow", b"Workflow of"), ("change", b"View workflow")):  # they see, but may not act
        page = view_only_client.get(f"/admin/taskqueue/taskresult/{rows[0].pk}/{view}/")
        assert page.status_code == 200 and shown in page.content and b"Resume from here" not in page.content
    assert b"Resume from here" in admin_client.get(f"/admin/taskqueue/taskresult/{rows[0].pk}/change/").content
    assert b"retry_selected" not in view_only_client.get("/admin/taskqueue/taskresult/").content
    assert TaskResult.objects.get(task_id=first.id).state == states.FAILURE  # nothing was sent
    answer = admin_client.post("/admin/taskqueue/taskresult/", {"action": "retry_selected",
                                                                 "_selected_action": selected}, follow=True)
    assert b"Retried 2 failed task(s)" in answer.content and b"Skipped 1 task(s) not in FAILURE" in answer.content
    assert AsyncResult(first.id).get(timeout=20) == 1 and AsyncResult(second.id).get(timeout=20) == 2


@pytest.mark.any_broker  # nothing is published (the test transaction never commits)
def test_workflow_view_draws_pending_nodes_of_chains_groups_and_chords(admin_client, db,
                                                                       django_assert_max_num_queries):
    # nothing consumes this queue: every node stays pending, and the graph shows them all
    res = (add.s(1, 1) | group(add.s(1), add.s(2)) | tsum.s()).apply_async(queue="wf-nobody")
    nested = group(add.s(3, 3) | add.s(4) | add.s(5), add.s(6, 6)).apply_async(queue="wf-nobody")
    first = res.parent.parent  # the chain's first step (the header group's parent)
    TaskResult.objects.create(task_id=first.id, task_name=add.name, state=states.PENDING)
    middle = nested.results[0].parent  # the middle step of the group's chain: its lineage is that chain's
    row = TaskResult.objects.create(task_id=middle.id, task_name=add.name, root_id=middle.parent.id,
                                    parent_id=middle.parent.id)
    page = admin_client.get(f"/admin/taskqueue/taskresult/{TaskResult.objects.get(task_id=first.id).pk}/workflow/")
    html = page.content.decode()
    shown = _states_on_page(html)
    assert set(shown) == {first.id, *(r.id for r in res.parent.results), res.id}
    assert set(shown.values()) == {states.PENDING} and "chord header" in html and "running" in html
    nested_page = admin_client.get(f"/admin/taskqueue/taskresult/{row.pk}/workflow/").content.decode()
    assert len(_states_on_page(nested_page)) == 4  # the whole group of a chain and a task
    with django_assert_max_num_queries(8):
        fragment = admin_client.get(f"/admin/taskqueue/taskresult/{row.pk}/workflow/?fragment=1")
    assert fragment.status_code == 200 and b'id="tq-graph" data-running="1"' in fragment.content


def test_workflow_view_collapses_a_large_chord_with_bounded_queries(worker, admin_client,
                                                                   django_assert_max_num_queries):
    header = [add.s(i, i) for i in range(998)] + [fail.s("one"), fail.s("two")]
    res = chord(header, tsum.s())()
    with pytest.raises(ChordError):
        res.get(timeout=60)
    wait_until(lambda: ChordCounter.objects.get().remaining == 0, timeout=30, message="every member counted")
    member = TaskResult.objects.filter(task_name=add.name).first()
    with django_assert_max_num_queries(8):  # session, user, task, outline, rows, counts, failed members
        page = admin_client.get(f"/admin/taskqueue/taskresult/{member.pk}/workflow/")
    html = page.content.decode()
    assert "1,000 members: 998 SUCCESS, 2 FAILURE" in html, re.findall(r"[0-9,]+ members: [^<]*", html)
    assert "?group_id=" in html and "finished" in html
    assert _states_on_page(html)[res.id] == states.FAILURE  # the body, never run
    assert html.count('data-state="FAILURE"') == 3  # the two failed members and the body


def test_resume_a_chain_in_a_chord_header_and_two_failed_members(worker, admin_client):
    header = [fails_until_fixed.s(1, "in-chain") | add.s(10), fails_until_fixed.s(2, "second"), add.s(2, 2)]
    res = chord(header, record_list.s(label="two-failed-body"))()
    with pytest.raises(ChordError):
        res.get(timeout=20)
    counter = ChordCounter.objects.get()
    first_step = res.parent.results[0].parent.id  # the chain's first step; its last step is the member
    _failed(first_step), _failed(counter.member_ids[1])
    wait_until(lambda: ChordCounter.objects.get().remaining == 0, timeout=10)
    _fix("in-chain"), _fix("second")
    answer = _resume(admin_client, first_step)
    assert "again; what followed it runs" in answer, answer
    wait_until(lambda: TaskResult.objects.get(task_id=counter.member_ids[0]).state == states.SUCCESS, timeout=20)
    counter.refresh_from_db()
    assert counter.state == ChordCounter.FAILURE and counter.failed_task_id == counter.member_ids[1]
    answer = _resume(admin_client, counter.member_ids[1])
    assert "again; what followed it runs" in answer, answer
    assert AsyncResult(res.id).get(timeout=20) == [11, 2, 4]
    assert Run.objects.filter(label="two-failed-body").count() == 1


def test_the_call_of_a_failure_is_kept_whatever_its_arguments_hold(worker):
    sent = fail_with.delay("nul \x00 in the error", "\udc80")  # values jsonb refuses, stored tagged
    _failed(sent.id)
    call = store.failed_call(sent.id)
    assert call["task"] == fail_with.name and call["args"] == ["nul \x00 in the error", "\udc80"]


def test_a_failure_without_a_kept_call_runs_again_alone_and_a_never_run_task_is_refused(worker, admin_client):
    old = TaskResult.objects.create(task_id="failed-before-upgrade", task_name=fails_until_fixed.name,
                                    state=states.FAILURE, args=[7, "old"], kwargs={}, queue="default")
    never = TaskResult.objects.create(task_id="never-ran", task_name=add.name, state=states.FAILURE)
    _fix("old")
    assert "its call was not kept" in _resume(admin_client, old.task_id)
    assert AsyncResult(old.task_id).get(timeout=20) == 7
    assert "never ran: resume the task whose failure stopped it" in _resume(admin_client, never.task_id)
