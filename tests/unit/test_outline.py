"""The outline of a frozen canvas: every task in order, and keys that lead every task's row to it."""

from taskqueue import chain, chord, group, outline
from tests.tasks import add, tsum


def _outline(canvas):
    frozen = canvas.clone()
    frozen.freeze()
    tasks: list[dict] = []
    described = outline.describe(frozen, tasks)
    key = outline._key(described)
    return described, key, outline._aliases(key, tasks), tasks


def _reachable(tasks, keys) -> bool:
    """Whether each task's row (task id, root id or its own id, group id, parent id) finds a key."""
    for sig in tasks:
        options = sig["options"]
        lineage = {options["task_id"], options.get("root_id") or options["task_id"], options.get("group_id"),
                   options.get("parent_id")}
        if keys.isdisjoint(lineage):
            return False
    return True


def test_a_chain_is_keyed_by_its_first_task_and_needs_no_alias():
    described, key, aliases, tasks = _outline(chain(add.s(1, 1), add.s(2), add.s(3)))
    assert key == tasks[0]["options"]["task_id"] and aliases == []
    assert outline.task_ids(described) == [sig["options"]["task_id"] for sig in tasks]


def test_nested_canvases_reach_their_outline_through_aliases():
    canvases = [
        group(add.s(1, 1) | add.s(2) | add.s(3), add.s(4, 4)),
        chord([add.s(i, i) for i in range(3)], tsum.s() | add.s(1) | add.s(2)),
        group(chord([add.s(1, 1), add.s(2, 2)], tsum.s()), add.s(5, 5)),
        add.s(1, 1) | group(add.s(1), add.s(2) | add.s(3)) | tsum.s(),
    ]
    for canvas in canvases:
        described, key, aliases, tasks = _outline(canvas)
        assert _reachable(tasks, {key, *aliases}), canvas
        assert len(aliases) <= 2 and len(outline.task_ids(described)) == len(tasks)


def test_a_large_chord_needs_no_alias_per_member():
    described, key, aliases, _ = _outline(chord([add.s(i, i) for i in range(1000)], tsum.s()))
    assert described["chord"] == key and len(described["members"]) == 1000 and aliases == []
