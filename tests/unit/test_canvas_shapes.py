"""Canvas shapes, freezing and callbacks as Celery 5 has them, without sending anything."""

import json

import pytest

from taskqueue import GroupResult, chain, chord, group, signature
from taskqueue.canvas import chunks
from tests.tasks import add, echo, errback_label, fail, mul, tsum

NESTED = {
    "chain of groups of chains": lambda: chain(group(add.s(1, 1) | add.s(1), add.s(2, 2) | add.s(2)),
                                               group(tsum.s() | add.s(1), tsum.s() | add.s(2)), tsum.s()),
    "group then group then task": lambda: group(add.s(1, 1), add.s(2, 2)) | group(tsum.s(), tsum.s()) | tsum.s(),
    "group then chain": lambda: group(add.s(1, 1), add.s(2, 2)) | chain(group(tsum.s(), tsum.s()), tsum.s()),
    "chord in chain": lambda: chain(add.s(1, 1), chord([add.s(1), add.s(2)], tsum.s()), add.s(1000)),
    "chain in chord header": lambda: chord([add.s(1, 1) | add.s(1) | group(add.s(1), add.s(2)), add.s(2, 2)],
                                           tsum.s() | group(echo.s(), echo.s())),
    "group in group": lambda: group(add.s(0, 1), group(add.s(1, 1), group(add.s(1, 2), add.s(2, 2))), add.s(2, 3)),
    "chain chord chain chord": lambda: chain(echo.si(1), chord([echo.si(2), chain(echo.si(3), chord(
        [echo.si(4), echo.si(5)], echo.si(6)))], echo.si(7))),
}


@pytest.mark.parametrize("name", list(NESTED))
def test_nested_shapes_freeze_without_a_crash(name):
    canvas = NESTED[name]()
    first = canvas.clone().freeze()
    again = json.loads(json.dumps(canvas))  # frozen twice (as apply_async does), also after JSON
    assert signature(again).clone().freeze() is not None
    assert first is not None and canvas.clone().freeze().id != first.id  # a clone of an unfrozen canvas


def test_nested_groups_are_flattened_in_order():
    res = group(add.s(0, 1), group(add.s(1, 1), group(add.s(1, 2), add.s(2, 2))), add.s(2, 3)).freeze()
    assert len(res.results) == 5 and all(type(r).__name__ == "AsyncResult" for r in res.results)
    header = chord([add.s(1, 1), group(add.s(2, 2), add.s(3, 3))], tsum.s())
    header.freeze()
    members = header.tasks
    assert [m.args for m in members] == [(1, 1), (2, 2), (3, 3)]
    assert [m.options["group_index"] for m in members] == [0, 1, 2]


def test_one_member_groups_unroll_and_empty_groups_drop():
    steps = chain(add.s(1, 1), group(add.s(1)), add.s(1)).tasks
    assert [type(s).__name__ for s in steps] == ["Signature"] * 3
    assert (add.s(1, 1) | group(mul.s(2))).tasks[1].name == "tests.tasks.mul"
    c = chain(add.s(1, 1), group([]))
    c.freeze()
    assert len(c.tasks) == 1 and c.id == c.tasks[0].id


def test_group_then_tasks_is_one_chord_with_a_chain_body():
    sig = group(add.s(1, 1), add.s(2, 2)) | tsum.s() | add.s(1)
    assert isinstance(sig, chord) and isinstance(sig.body, chain) and len(sig.body.tasks) == 2
    extended = chord([add.s(1, 1)], tsum.s()) | mul.s(2)
    assert isinstance(extended, chord) and [t.name for t in extended.body.tasks] == ["tests.tasks.tsum",
                                                                                     "tests.tasks.mul"]
    assert isinstance(chain(add.s(1, 1), group(add.s(1), add.s(2)), tsum.s()).tasks[1], chord)


def test_lineage_and_ids_after_freeze():
    c = chain(add.s(1, 1), add.s(1), add.s(1))
    assert c.id is None
    last = c.freeze()
    first, second, third = c.tasks
    assert c.id == last.id == third.id
    assert "root_id" not in first.options  # the first step is its own root (stored as such)
    assert second.options["root_id"] == third.options["root_id"] == first.id
    assert second.options["parent_id"] == first.id and third.options["parent_id"] == second.id
    assert last.parent.id == second.id and last.parent.parent.id == first.id
    ending = chain(add.s(1, 1), group(add.s(1), add.s(2)))
    assert isinstance(ending.freeze(), GroupResult) and ending.id == ending.tasks[-1].id


def test_group_id_is_written_once():
    g = group(add.s(1, 1), add.s(2, 2))
    first = g.freeze()
    second = g.freeze("another-id")
    assert first.id == second.id == g.id and first.results == second.results
    assert [m.options["group_id"] for m in g.tasks] == [g.id, g.id]
    member = add.s(1, 1)
    member.freeze(group_id="kept")
    member.freeze(group_id="other")
    assert member.options["group_id"] == "kept"


def test_chain_link_goes_to_the_last_step_and_link_error_to_every_step():
    c = chain(add.s(1, 1), add.s(1), add.s(1))
    c.link(echo.s())
    c.link_error(errback_label.s("eb"))
    c.freeze()
    assert [len(s.options.get("link", [])) for s in c.tasks] == [0, 0, 1]
    assert all(s.options["link_error"] == [dict(errback_label.s("eb"))] for s in c.tasks)
    appended = chain(add.s(1, 1), fail.s()).on_error(errback_label.s("eb"))
    appended |= add.s(1)  # a chain, not dict's in-place merge
    assert isinstance(appended, chain) and len(appended.tasks) == 3
    assert [len(s.options.get("link_error", [])) for s in appended.tasks] == [1, 1, 0]  # as Celery's unchain


def test_links_hold_no_duplicates_and_flatten():
    sig = add.s(1, 1)
    for _ in range(2):
        sig.link(echo.s())
        sig.link_error(errback_label.s("eb"))
    assert len(sig.options["link"]) == 1 and len(sig.options["link_error"]) == 1
    inner = mul.s(2)
    inner.link(echo.s())
    sig.link(inner)
    assert [s.name for s in sig.flatten_links()] == ["tests.tasks.add", "tests.tasks.echo", "tests.tasks.mul",
                                                     "tests.tasks.echo"]


def test_group_refuses_link_options_as_celery():
    g = group(add.s(1, 1), add.s(2, 2))
    with pytest.raises(TypeError, match="^Cannot add link to group: use a chord$"):
        g.apply_async(link=echo.s())
    with pytest.raises(TypeError, match="^Cannot add link to group: do that on individual tasks$"):
        g.apply_async(link_error=echo.s())
    g.link(echo.s())  # Celery: an immutable copy on the first member
    assert g.tasks[0].options["link"] == [dict(echo.si())] and "link" not in g.tasks[1].options


def test_empty_canvases_and_reprs():
    assert chain().apply_async() is None and chain()() is None
    assert repr(group([])) == "group(<empty>)"
    assert repr(add.s(2, 2)) == "tests.tasks.add(2, 2)"
    assert repr(add.s(2, 2) | mul.s(4)) == "tests.tasks.add(2, 2) | mul(4)"
    assert repr(group(add.s(2, 2), mul.s(4, 4))) == "group([tests.tasks.add(2, 2), mul(4, 4)])"
    assert repr(chord([add.s(1, 1)], tsum.s())) == "%tests.tasks.tsum([add(1, 1)])"


def test_starmap_and_chunks_are_immutable_messages():
    assert add.starmap([(1, 1)]).immutable and add.map([1]).immutable
    members = add.chunks([(i, i) for i in range(5)], 2).group().tasks
    assert [len(m.kwargs["it"]) for m in members] == [2, 2, 1] and all(m.immutable for m in members)
    assert signature(json.loads(json.dumps(add.chunks([(1, 1)], 1)))).__class__ is chunks


def test_skew_sets_a_countdown_per_member():
    g = group(add.s(i, i) for i in range(5)).skew(start=1, stop=3)
    assert [m.options["countdown"] for m in g.tasks] == [1.0, 2.0, 3.0, 3.0, 3.0]
    assert [m.options["countdown"] for m in group(add.s(1, 1), add.s(2, 2)).skew(step=0.5).tasks] == [1.0, 1.5]


def test_immutability_and_chord_callbacks_go_where_celery_puts_them():
    g = group(add.s(1), mul.s(2))
    g.set_immutable(True)
    assert all(m.immutable for m in g.tasks)
    c = chord([add.s(1), mul.s(2)], tsum.s())
    c.set_immutable(True)
    c.link(echo.s())
    c.link_error(errback_label.s("eb"))
    assert all(m.immutable for m in c.tasks) and not c.body.immutable
    assert c.body.options["link"] == [dict(echo.s())] and c.body.options["link_error"] == [dict(errback_label.s("eb"))]
    assert all("link" not in m.options and "link_error" not in m.options for m in c.tasks)


def test_a_chain_as_a_chord_header_gives_its_steps_as_the_members():
    # Celery's _chord.__init__ passes the header through _maybe_group: a chain's tasks become the
    # header's members (run in parallel), a lone signature a one-member header
    c = chord(chain(add.s(1, 1), mul.s(2)), tsum.s())
    assert [m["task"] for m in c.tasks] == ["tests.tasks.add", "tests.tasks.mul"]
    assert [m.args for m in c.tasks] == [(1, 1), (2,)]
    assert [m["task"] for m in chord(dict(chain(echo.s(1), echo.s(2))), tsum.s()).tasks] == ["tests.tasks.echo"] * 2
    assert len(chord(add.s(1, 1), tsum.s()).tasks) == 1
    frozen = chord(chain(add.s(1, 1), mul.s(2)), tsum.s()).freeze()
    assert len(frozen.parent.results) == 2
