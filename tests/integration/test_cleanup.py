"""Result cleanup (`manage.py taskqueue cleanup`): expired rows go in bounded batches, others stay."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from taskqueue import states
from taskqueue.models import ChordCounter, ChordPlan, GroupResult, TaskResult
from tests.factories import TaskResultFactory

pytestmark = pytest.mark.any_broker  # the results database only


def test_cleanup_deletes_every_expired_row_in_batches_and_leaves_the_others(transactional_db):
    """Expired rows interleaved with fresh and unfinished ones (by id): 23 expired rows in batches of
    5 take five DELETEs of at most 5 rows; a fresh SUCCESS, an old PENDING and an old STARTED stay."""
    kept = []
    for index in range(23):
        state = states.FAILURE if index % 7 == 0 else states.SUCCESS
        TaskResultFactory(task_id=f"old-{index}", expired=True, state=state)
        if index % 6 == 0:
            kept.append(TaskResultFactory(task_id=f"fresh-{index}").task_id)
    kept.append(TaskResultFactory(task_id="old-pending", expired=True, state=states.PENDING).task_id)
    kept.append(TaskResultFactory(task_id="old-started", expired=True, state=states.STARTED).task_id)
    with CaptureQueriesContext(connection) as queries:
        call_command("taskqueue", "cleanup", "--batch-size", "5")
    deletes = [q["sql"] for q in queries.captured_queries
               if q["sql"].startswith("DELETE") and TaskResult._meta.db_table in q["sql"]]
    assert len(deletes) == 5, deletes
    assert all(q.count(",") <= 4 for q in deletes)  # at most 5 ids in each IN (...)
    assert sorted(TaskResult.objects.values_list("task_id", flat=True)) == sorted(kept)



def test_cleanup_deletes_the_chords_settled_and_the_groups_made_before_the_expiry(transactional_db):
    """A chord whose body went out three days ago goes with its plan and its group; a chord still
    waiting, a group with a task still running and a fresh group stay."""
    from datetime import timedelta

    from django.utils import timezone

    long_ago = timezone.now() - timedelta(days=3)
    settled = ChordCounter.objects.create(group_id="settled", total=1, remaining=0, state=ChordCounter.SUCCESS,
                                          body_sent=True, date_done=long_ago, member_ids=["a"], body={})
    ChordCounter.objects.create(group_id="waiting", total=2, remaining=1, member_ids=["b", "c"], body={})
    for group_id in ("settled", "waiting", "finished-group", "running-group", "fresh-group"):
        GroupResult.objects.create(group_id=group_id, member_ids=[])
    GroupResult.objects.exclude(group_id="fresh-group").update(date_created=long_ago)
    TaskResultFactory(task_id="done-member", group_id="finished-group", expired=True)
    TaskResultFactory(task_id="running-member", group_id="running-group", state=states.STARTED)
    call_command("taskqueue", "cleanup", "--batch-size", "2")
    assert list(ChordCounter.objects.values_list("group_id", flat=True)) == ["waiting"]
    assert not ChordPlan.objects.filter(counter_id=settled.pk).exists()
    assert sorted(GroupResult.objects.values_list("group_id", flat=True)) == ["fresh-group", "running-group",
                                                                               "waiting"]
