"""Checked by mypy in test_typed_api.py, never imported: each line marked `# E: <codes>` has exactly
those errors, and no other line has one."""

from taskqueue import Task, app, task


@task
def add(x: int, y: int) -> int:
    return x + y


@task(bind=True)
def score(self: Task, order_id: int) -> str:
    return str(order_id)


@app.task
def on_app(x: int) -> str:
    return str(x)


add.delay("x", 2)  # E: arg-type
add.delay(1)  # E: call-arg
add.delay(1, 2, 3)  # E: call-arg
add.delay(1, z=2)  # E: call-arg
add("1", 2)  # E: arg-type
total: str = add(1, 2)  # E: assignment
score.delay("7")  # E: arg-type
score(score, 7)  # E: call-arg arg-type  (the task passes itself: callers do not)
on_app.delay(b"1")  # E: arg-type
