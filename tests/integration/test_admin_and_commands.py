"""Admin pages, the taskqueue management command and migrations."""

from io import StringIO

import pytest
from django.core.management import call_command

from taskqueue.models import TaskResult
from tests.factories import ChordCounterFactory, DeadLetterFactory, GroupResultFactory, TaskResultFactory


@pytest.fixture
def rows(db):
    ok = TaskResultFactory(task_id="id-ok", worker="w1")
    bad = TaskResultFactory(task_id="id-bad", failed=True, queue="other", worker="w2", meta={"progress": 10})
    return ok, bad


@pytest.mark.any_broker
def test_result_list_filters_and_search(admin_client, rows):
    page = admin_client.get("/admin/taskqueue/taskresult/")
    assert page.status_code == 200 and b"id-ok" in page.content and b"id-bad" in page.content
    for query in ("state=FAILURE", "task_name=tests.tasks.fail", "queue=other", "worker=w2", "q=id-bad"):
        filtered = admin_client.get(f"/admin/taskqueue/taskresult/?{query}")
        assert filtered.status_code == 200, query
        assert b"id-bad" in filtered.content and b"id-ok" not in filtered.content, query


@pytest.mark.any_broker
def test_result_detail_shows_args_result_traceback_and_meta(admin_client, rows):
    _, bad = rows
    page = admin_client.get(f"/admin/taskqueue/taskresult/{bad.pk}/change/")
    assert page.status_code == 200
    for text in (b"ValueError: boom", b"exc_type", b"progress", b"tests.tasks.fail"):
        assert text in page.content


def test_status_inspect_and_cleanup_commands(rows, broker_url, settings):
    out = StringIO()
    call_command("taskqueue", "status", stdout=out)
    assert "SUCCESS: 1" in out.getvalue() and "FAILURE: 1" in out.getvalue()
    out = StringIO()
    call_command("taskqueue", "inspect", "id-bad", stdout=out)
    assert "state: FAILURE" in out.getvalue()
    from datetime import timedelta

    from django.utils import timezone

    TaskResult.objects.filter(task_id="id-ok").update(date_done=timezone.now() - timedelta(days=2))
    out = StringIO()
    call_command("taskqueue", "cleanup", "--batch-size", "1", stdout=out)
    assert "deleted 1" in out.getvalue()
    assert list(TaskResult.objects.values_list("task_id", flat=True)) == ["id-bad"]


def test_purge_command(broker_url, transactional_db):
    from tests.tasks import add

    add.apply_async((1, 1), queue="to-purge")
    add.apply_async((1, 1), queue="to-purge")
    out = StringIO()
    call_command("taskqueue", "purge", "to-purge", stdout=out)
    assert "purged 2" in out.getvalue()


@pytest.mark.any_broker
@pytest.mark.any_database
def test_no_missing_migrations(db):
    call_command("makemigrations", "taskqueue", "--check", "--dry-run", stdout=StringIO())


@pytest.mark.any_broker  # eager
def test_group_and_chord_pages_show_members_and_states(admin_client, transactional_db, settings):
    from taskqueue import chord
    from taskqueue.models import ChordCounter, GroupResult
    from tests.tasks import add, tsum

    settings.TASKQUEUE_TASK_ALWAYS_EAGER = True
    res = chord([add.s(1, 1), add.s(2, 2)], tsum.s())()
    assert res.get() == 6
    counter = ChordCounter.objects.get(group_id=res.parent.id)
    page = admin_client.get(f"/admin/taskqueue/chordcounter/{counter.pk}/change/")
    assert page.status_code == 200
    assert page.content.count(b"SUCCESS") >= 3 and b"tests.tasks.tsum" in page.content
    listing = admin_client.get("/admin/taskqueue/chordcounter/")
    assert b"2/2" in listing.content
    group_row = GroupResult.objects.get(group_id=res.parent.id)
    page = admin_client.get(f"/admin/taskqueue/groupresult/{group_row.pk}/change/")
    assert page.status_code == 200 and page.content.count(b"tests.tasks.add") == 2


@pytest.mark.any_broker
def test_a_chord_half_done_a_group_and_dead_letters_are_listed_with_their_states(admin_client, db):
    counter = ChordCounterFactory(total=3, remaining=2)
    TaskResultFactory(task_id=counter.member_ids[0], group_id=counter.group_id)  # the one member done
    page = admin_client.get(f"/admin/taskqueue/chordcounter/{counter.pk}/change/")
    assert page.status_code == 200
    assert page.content.count(b'data-state="SUCCESS"') == 1 and page.content.count(b'data-state="PENDING"') == 2
    assert b"1/3" in admin_client.get("/admin/taskqueue/chordcounter/").content

    group_row = GroupResultFactory(members=3)
    page = admin_client.get(f"/admin/taskqueue/groupresult/{group_row.pk}/change/")
    assert page.status_code == 200 and page.content.count(b'data-state="SUCCESS"') == 3

    DeadLetterFactory(message_id="forged-9", reason="forged message: the signature does not match")
    DeadLetterFactory(message_id="bad-9", reason="malformed body")
    found = admin_client.get("/admin/taskqueue/deadletter/?q=forged-9")
    assert found.status_code == 200 and b"forged message" in found.content and b"bad-9" not in found.content


@pytest.mark.any_broker
def test_view_only_staff_see_results_but_get_no_action(view_only_client, admin_client, rows, transactional_db):
    from tests.factories import PeriodicTaskFactory

    periodic = PeriodicTaskFactory(enabled=True)
    pending = TaskResultFactory(task_id="id-pending", state="PENDING")
    page = view_only_client.get("/admin/taskqueue/taskresult/")
    assert page.status_code == 200 and b"id-ok" in page.content and b'value="revoke_selected"' not in page.content
    view_only_client.post("/admin/taskqueue/taskresult/", {"action": "revoke_selected",
                                                           "_selected_action": [pending.pk]})
    assert TaskResult.objects.get(pk=pending.pk).state == "PENDING"  # refused
    for action in ("run_now", "enable", "disable"):
        assert f'value="{action}"'.encode() not in view_only_client.get("/admin/taskqueue/periodictask/").content
    view_only_client.post("/admin/taskqueue/periodictask/", {"action": "disable", "_selected_action": [periodic.pk]})
    periodic.refresh_from_db()
    assert periodic.enabled
    assert b'value="revoke_selected"' in admin_client.get("/admin/taskqueue/taskresult/").content  # who may change


@pytest.mark.any_broker
def test_a_periodic_task_names_a_registered_task(admin_client, db):
    from taskqueue.models import IntervalSchedule, PeriodicTask

    every = IntervalSchedule.objects.create(every=5, period="seconds")
    form = {"name": "nightly", "args": "[]", "kwargs": "{}", "queue": "", "interval": every.pk, "enabled": "on",
            "description": "", "runs-TOTAL_FORMS": "0", "runs-INITIAL_FORMS": "0"}
    page = admin_client.post("/admin/taskqueue/periodictask/add/", {**form, "task": "tests.tasks.tikc"})
    assert page.status_code == 200 and b"Select a valid choice" in page.content
    assert not PeriodicTask.objects.exists()
    page = admin_client.post("/admin/taskqueue/periodictask/add/", {**form, "task": "tests.tasks.tick"})
    assert page.status_code == 302 and PeriodicTask.objects.get().task == "tests.tasks.tick"
