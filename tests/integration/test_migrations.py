"""Migrations that move data: what a running installation has is kept across the upgrade."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.any_broker  # the database's


def _migrate(target: str):
    executor = MigrationExecutor(connection)
    executor.migrate([("taskqueue", target)])
    executor.loader.build_graph()
    return executor.loader.project_state([("taskqueue", target)]).apps


def test_a_chord_waiting_during_the_upgrade_keeps_its_members_and_body(transactional_db):
    """0011 moves a chord's member ids and body from its counter row to a plan row of their own."""
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("taskqueue")[0][1]
    try:
        before = _migrate("0010_held_message_indexes")
        before.get_model("taskqueue", "ChordCounter").objects.create(
            group_id="waiting-chord", total=2, remaining=1, member_ids=["m-1", "m-2"],
            body={"task": "tests.tasks.tsum", "args": [], "kwargs": {}, "options": {}})
        after = _migrate("0011_chord_plan")
        counter = after.get_model("taskqueue", "ChordCounter").objects.get(group_id="waiting-chord")
        plan = after.get_model("taskqueue", "ChordPlan").objects.get(counter=counter)
        assert (counter.remaining, plan.member_ids, plan.body["task"]) == (1, ["m-1", "m-2"], "tests.tasks.tsum")
    finally:
        _migrate(latest)


def test_a_downgrade_past_the_plan_rows_puts_a_waiting_chord_back_in_its_counter(transactional_db):
    """0011 reversed (a rollback of the release): the columns come back with the rows there, and
    the plan's member ids and body go back into them."""
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("taskqueue")[0][1]
    try:
        after = _migrate("0011_chord_plan")
        counter = after.get_model("taskqueue", "ChordCounter").objects.create(group_id="waiting-chord", total=2,
                                                                            remaining=1)
        after.get_model("taskqueue", "ChordPlan").objects.create(
            counter=counter, member_ids=["m-1", "m-2"], body={"task": "tests.tasks.tsum", "args": []})
        before = _migrate("0010_held_message_indexes")
        counter = before.get_model("taskqueue", "ChordCounter").objects.get(group_id="waiting-chord")
        assert (counter.remaining, counter.member_ids, counter.body["task"]) == (1, ["m-1", "m-2"], "tests.tasks.tsum")
    finally:
        _migrate(latest)


def test_a_chord_failed_before_the_upgrade_does_not_count_its_failed_member_again(transactional_db):
    """0012 records the members a failed chord has counted, so meeting one again after the upgrade
    (the worker that meets a revoked member's message) leaves `remaining` as it was."""
    from taskqueue import store

    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("taskqueue")[0][1]
    try:
        before = _migrate("0011_chord_plan")
        before.get_model("taskqueue", "ChordCounter").objects.create(
            group_id="failed-chord", total=3, remaining=1, state="FAILURE", failed_task_id="m-1")
        TaskResult = before.get_model("taskqueue", "TaskResult")
        TaskResult.objects.create(task_id="m-1", group_id="failed-chord", state="FAILURE")
        TaskResult.objects.create(task_id="m-2", group_id="failed-chord", state="REVOKED")
        TaskResult.objects.create(task_id="m-3", group_id="failed-chord", state="PENDING")
        _migrate(latest)
        store.count_failed_member("failed-chord", "m-1")
        store.count_failed_member("failed-chord", "m-2")
        assert store.chord_counter("failed-chord").remaining == 1  # m-3 still runs
    finally:
        _migrate(latest)
