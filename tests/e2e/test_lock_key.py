"""lock_key: runs with the same key value never overlap; different keys run in parallel."""

from itertools import combinations

from taskqueue.testing import start_worker
from tests.models import Run
from tests.tasks import locked


def test_same_key_never_overlaps_and_different_keys_do(transactional_db, broker_url):
    worker = start_worker("-c", "4", "-Q", "locks")
    try:
        results = [locked.apply_async(kwargs={"key": key, "label": key, "seconds": 0.3}, queue="locks")
                   for _ in range(6) for key in ("A", "B")]
        assert sorted(r.get(timeout=60) for r in results) == ["A"] * 6 + ["B"] * 6
    finally:
        worker.terminate()
    runs = {key: sorted(Run.objects.filter(label=key).values_list("started", "finished")) for key in "AB"}
    for key, spans in runs.items():
        assert len(spans) == 6
        for (_start1, end1), (start2, _end2) in zip(spans, spans[1:], strict=False):
            assert start2 >= end1, f"two runs for key {key} overlapped"
    overlapping = [(a, b) for a in runs["A"] for b in runs["B"] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, "different keys never ran in parallel"
    assert not any(s1 < e2 and s2 < e1 for (s1, e1), (s2, e2) in combinations(runs["A"], 2))
