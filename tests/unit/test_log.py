"""short_repr: what the worker's outcome line shows of a result."""

from taskqueue.log import short_repr


def test_the_logged_result_is_cut_short_and_never_raises():
    class Unprintable:
        def __repr__(self):
            raise RuntimeError("no")

    assert len(short_repr("x" * 10_000)) < 130
    assert short_repr(list(range(1000))).endswith("...]")
    assert short_repr(Unprintable()).startswith("<Unprintable")
