"""The result pages made for reading: columns, links, group states, paged members, bounded queries;
the dashboard."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from taskqueue.admin import scale
from tests.factories import ChordCounterFactory, DeadLetterFactory, GroupResultFactory, TaskResultFactory

LIST = "/admin/taskqueue/taskresult/"
pytestmark = pytest.mark.any_broker  # rows made by hand: the broker plays no part


def _chain(n_rows: int, tag: str) -> list:
    """Rows of chains of three (parent, root) and a chord's members (group), with every state."""
    chord = ChordCounterFactory(total=3, remaining=1, group_id=f"chord-{tag}")
    rows = []
    started = timezone.now() - timedelta(minutes=5)
    for index in range(n_rows):
        root = rows[index - index % 3].task_id if index % 3 else None
        rows.append(TaskResultFactory(
            task_id=f"{tag}-{index:04d}-aaaaaaaaaaaaaaaa", parent_id=rows[-1].task_id if index % 3 else None,
            root_id=root, group_id=chord.group_id if index % 5 == 0 else None,
            state=("SUCCESS", "FAILURE", "STARTED", "RETRY")[index % 4], date_created=started,
            date_started=started + timedelta(seconds=1), date_done=started + timedelta(seconds=3, milliseconds=250)))
    return rows


def test_list_shows_short_ids_badges_durations_seconds_lineage_links_and_group_state(admin_client, db):
    rows = _chain(6, "cols")
    page = admin_client.get(LIST).content.decode()
    child = rows[1]
    assert f'title="{child.task_id}" style="white-space:nowrap">cols-000…</code>' in page  # the whole id on hover
    assert 'class="tq-badge"' in page and "#c82333" in page  # a FAILURE badge is red
    assert "2.25 s" in page  # from start to end
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d<", page)  # to the second
    assert f"/admin/taskqueue/taskresult/id/{child.parent_id}/" in page  # parent as a link, resolved later
    assert "chord PENDING 2/3" in page  # the chord its members belong to
    followed = admin_client.get(f"/admin/taskqueue/taskresult/id/{child.parent_id}/")
    assert followed.status_code == 302 and followed.url == f"/admin/taskqueue/taskresult/{rows[0].pk}/change/"
    assert admin_client.get("/admin/taskqueue/taskresult/group/chord-cols/").url.startswith(
        "/admin/taskqueue/chordcounter/")
    missing = admin_client.get("/admin/taskqueue/taskresult/id/not-stored-yet/", follow=True)
    assert b"No result is stored for task not-stored-yet" in missing.content


def test_a_plain_group_gets_its_state_from_its_members(admin_client, db):
    group = GroupResultFactory(members=3)
    TaskResultFactory(group_id=group.group_id, state="FAILURE")
    assert b"group FAILURE 4/4" in admin_client.get(LIST).content
    assert b"group FAILURE 4/4" in admin_client.get("/admin/taskqueue/groupresult/").content


def test_detail_shows_milliseconds_and_full_lineage_links(admin_client, db):
    rows = _chain(3, "detail")
    page = admin_client.get(f"{LIST}{rows[2].pk}/change/").content.decode()
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} UTC", page)
    assert f'<a href="/admin/taskqueue/taskresult/id/{rows[1].task_id}/"><code>{rows[1].task_id}</code></a>' in page
    assert "2.25 s" in page


def test_list_and_detail_queries_do_not_grow_with_the_rows(admin_client, db):
    _chain(3, "few")
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(LIST).status_code == 200
    _chain(45, "many")
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(LIST).status_code == 200
    assert len(many) == len(few) <= 10
    detail = _chain(3, "one")[2]
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(f"{LIST}{detail.pk}/change/").status_code == 200
    assert len(queries) <= 6
    assert not any("COUNT(*)" in q["sql"] and "LIMIT" not in q["sql"].upper() for q in many.captured_queries)


def test_filters_offer_values_from_the_index_and_search_by_id_prefix(admin_client, db):
    rows = _chain(4, "find")
    TaskResultFactory(task_id="other-id", queue="mail", worker="w9")
    page = admin_client.get(LIST).content.decode()
    assert "?queue=mail" in page and "?worker=w9" in page and "?task_name=tests.tasks.add" in page
    assert _listed(admin_client, "?q=find-0002") == {rows[2].pk}  # the first characters of an id
    assert _listed(admin_client, f"?q={rows[0].task_id}") == {row.pk for row in rows[:3]}  # it, and what it is root of
    assert _listed(admin_client, f"?root_id={rows[0].task_id}") == {rows[1].pk, rows[2].pk}
    assert scale.distinct_values(rows[0].__class__.objects.all(), "queue") == ["default", "mail"]


def _listed(client, query: str) -> set[int]:
    page = client.get(f"{LIST}{query}").content.decode()
    return {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', page)}


def test_the_count_is_bounded(db, monkeypatch):
    from taskqueue.models import TaskResult

    monkeypatch.setattr(scale, "COUNT_LIMIT", 4)
    _chain(6, "count")
    assert scale.BoundedPaginator(TaskResult.objects.all(), 2).count == 4


def test_a_big_chord_is_paged_and_prints_its_body_once(admin_client, db):
    counter = ChordCounterFactory(total=250, remaining=0, state="SUCCESS")
    for task_id in counter.member_ids[:240]:
        TaskResultFactory(task_id=task_id, group_id=counter.group_id)
    url = f"/admin/taskqueue/chordcounter/{counter.pk}/change/"
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(url).content.decode()
    assert len(queries) <= 8
    assert page.count("<tr data-state=") == 100 and "250 members" in page and "240 SUCCESS" in page
    assert "10 PENDING" in page and counter.member_ids[100] not in page
    assert page.count("tests.tasks.tsum") == 1  # the body, pretty-printed once
    assert "members 0–99 of 250 (page 1 of 3)" in page and "?members=3" in page
    last = admin_client.get(f"{url}?members=3").content.decode()
    assert last.count("<tr data-state=") == 50 and counter.member_ids[249] in last
    assert last.count('data-state="PENDING"') == 10


def test_dashboard_shows_throughput_and_failure_rate_per_queue(admin_client, db):
    now = timezone.now()
    for minutes_ago, state, queue in ((1, "SUCCESS", "default"), (1, "FAILURE", "default"), (2, "SUCCESS", "mail"),
                                      (3, "SUCCESS", "default"), (90, "FAILURE", "mail")):
        TaskResultFactory(state=state, queue=queue, date_done=now - timedelta(minutes=minutes_ago))
    TaskResultFactory(state="STARTED", queue="mail", date_done=None)
    index = admin_client.get("/admin/").content.decode()
    assert "/admin/taskqueue/dashboard/" in index
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get("/admin/taskqueue/dashboard/").content.decode()
    assert len(queries) <= 4
    table = page[page.index('id="tq-dashboard"'):]
    default = table[table.index("<td>default</td>"):table.index("<td>mail</td>")]
    assert "<td>3</td>" in default and "33.3 %" in default and "<svg" in default and "1 failed" in default
    mail = table[table.index("<td>mail</td>"):]
    assert "<td>1</td>" in mail and "0.0 %" in mail


def test_view_only_staff_see_the_dashboard_others_do_not(client, db):
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("watcher", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get("/admin/taskqueue/dashboard/").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_taskresult"))
    assert client.get("/admin/taskqueue/dashboard/").status_code == 200


def test_dead_letter_admin_still_works(admin_client, db):
    DeadLetterFactory(message_id="dl-1")
    assert b"dl-1" in admin_client.get("/admin/taskqueue/deadletter/").content
