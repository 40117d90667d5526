"""Celery's state sets and precedence, and the publish retry policy: pure maths."""

import pytest

from taskqueue import states
from taskqueue.retries import publish_waits


def test_state_sets_are_celerys():
    assert states.READY_STATES == frozenset({"SUCCESS", "FAILURE", "REVOKED"})
    assert states.UNREADY_STATES == frozenset({"PENDING", "RECEIVED", "STARTED", "REJECTED", "RETRY"})
    assert states.EXCEPTION_STATES == frozenset({"RETRY", "FAILURE", "REVOKED"})
    assert states.PROPAGATE_STATES == frozenset({"FAILURE", "REVOKED"})
    assert states.ALL_STATES == frozenset({"PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY",
                                           "REVOKED"})
    for name in ("READY_STATES", "UNREADY_STATES", "EXCEPTION_STATES", "PROPAGATE_STATES", "ALL_STATES"):
        assert type(getattr(states, name)) is frozenset
    assert states.REJECTED == "REJECTED" and states.IGNORED == "IGNORED"


def test_state_precedence_as_celery():
    assert states.state(states.PENDING) < states.state(states.SUCCESS)
    assert states.state("PROGRESS") > states.state(states.STARTED)
    assert not states.state("PROGRESS") > states.state(states.SUCCESS)
    assert states.precedence("PROGRESS") == states.precedence(None)


def test_publish_retry_policy_waits_as_celery():
    assert list(publish_waits(None)) == [0, 0.2, 0.4]  # Celery's task_publish_retry_policy
    assert list(publish_waits({"max_retries": 5, "interval_start": 1, "interval_step": 1,
                               "interval_max": 3})) == [1, 2, 3, 3, 3]
    assert list(publish_waits({"max_retries": 0})) == []
    forever = publish_waits({"max_retries": None, "interval_max": 0.5})
    assert [next(forever) for _ in range(6)] == [0, 0.2, 0.4, 0.5, 0.5, 0.5]
    with pytest.raises(TypeError, match="unknown retry_policy key"):
        next(publish_waits({"retries": 3}))
