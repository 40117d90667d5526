"""Result cleanup (`manage.py taskqueue cleanup`): expired rows go in bounded batches, others stay."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from taskqueue import states
from taskqueue.models import TaskResult
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

