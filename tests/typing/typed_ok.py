"""Checked by mypy in test_typed_api.py, never imported: what @task's types allow and infer."""

from typing import assert_type

from taskqueue import AsyncResult, Task, app, shared_task, task
from taskqueue.canvas import Signature


@task
def add(x: int, y: int) -> int:
    return x + y


@task(name="typing.scale", queue="typing")
def scale(value: float, *, factor: float = 2.0) -> float:
    return value * factor


@task(bind=True, max_retries=3)
def score(self: Task, order_id: int, customer_id: str) -> dict[str, int]:
    return {customer_id: order_id}


@task(bind=True)
def untyped_self(self, text: str) -> str:
    return self.name + text


class Audited(Task):
    def audit(self) -> str:
        return self.name


@task(base=Audited)
def audited(x: int) -> int:
    return x


@app.task
def on_app(x: int) -> str:
    return str(x)


@shared_task(ignore_result=True)
def shared(items: list[str]) -> None:
    pass


assert_type(add(1, 2), int)
assert_type(add.delay(1, 2), AsyncResult)
assert_type(add.delay(1, y=2), AsyncResult)
assert_type(add.apply_async((1, 2), countdown=5), AsyncResult)
assert_type(add.s(1), Signature)
assert_type(add.si(1, 2), Signature)
assert_type(add.signature((1,), immutable=True), Signature)
assert_type(scale(1.5, factor=3), float)
assert_type(score(7, "c1"), dict[str, int])
assert_type(score.delay(7, customer_id="c1"), AsyncResult)
assert_type(untyped_self("x"), str)
assert_type(audited.audit(), str)
assert_type(on_app(1), str)
assert_type(shared.delay(["a"]), AsyncResult)
