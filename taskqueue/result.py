"""AsyncResult and GroupResult: what a caller holds of a task or group. They read the stored rows
(`store`), wait for them (`notify`), and pass on the caller's verbs: revoke (`control`), forget."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async

from . import control, notify, states, store
from .brokers import get_broker
from .codecs import from_notice, value_of
from .exceptions import TimeoutError
from .request import in_worker_task

# Re-read the row after these waits even without a notification (one may be lost, e.g. across a
# Redis restart); the interval doubles up to the maximum.
_FIRST_RECHECK, _MAX_RECHECK = 0.05, 1.0


class AsyncResult:
    """The state and result of one task id; rows are read fresh until the task is ready."""

    def __init__(self, id: str, task_name: str | None = None, parent: AsyncResult | GroupResult | None = None,
                 app=None):
        if id is None:
            raise ValueError(f"AsyncResult requires valid id, not {type(id)}")
        self.id = str(id)
        self.task_name = task_name
        self._parent = parent
        self._ready_row = None
        self._sent_at: float | None = None  # set by delay()/apply_async() in this process

    task_id = property(lambda self: self.id)

    def _fetch(self):
        if self._ready_row is not None:
            return self._ready_row
        row = store.fetch(self.id)
        if row is not None and row.state in states.READY_STATES:
            self._ready_row = row
        return row

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        row = self._fetch()
        return row.state if row is not None else states.PENDING

    status = state

    @property
    def result(self) -> Any:
        """The return value, the exception when failed, or the meta of a custom state."""
        return value_of(self._fetch())

    info = result

    @property
    def traceback(self) -> str | None:
        row = self._fetch()
        return row.traceback if row is not None else None

    @property
    def date_done(self) -> datetime | None:
        row = self._fetch()
        return row.date_done if row is not None else None

    @property
    def retries(self) -> int:
        row = self._fetch()
        return row.retries if row is not None else 0

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def exists(self) -> bool:
        """True once the task is known: queued, delayed, running or stored; False for an unknown id."""
        if self._fetch() is not None:
            return True
        return self.id in get_broker().inspect([self.id]).bodies

    # -- waiting -------------------------------------------------------------------------------

    async def aget(self, timeout: float | None = None, propagate: bool = True, **options: Any) -> Any:
        """`get` for async code: waits in Django's sync thread, not in the event loop."""
        return await sync_to_async(self.get)(timeout=timeout, propagate=propagate, **options)

    def get(self, timeout: float | None = None, propagate: bool = True, interval: float | None = None,
            on_message: Callable[[dict], None] | None = None, disable_sync_subtasks: bool = True,
            follow_parents: bool = True, callback: Callable[[str, Any], None] | None = None, **_: Any) -> Any:
        """Wait for the result (woken when it is stored); re-raise the task's exception if `propagate`.

        A failed parent (an earlier chain step) is re-raised first, as Celery does. `callback` is
        called as `callback(task_id, value)` once the value is known (after the re-raise, if any).
        """
        _refuse_inside_a_task(disable_sync_subtasks)
        if propagate and follow_parents:
            self.maybe_throw_parent()
        row = self._wait(timeout, on_message, interval)
        value = value_of(row)
        if propagate and row.state in states.PROPAGATE_STATES and isinstance(value, BaseException):
            raise value
        if callback is not None:
            callback(self.id, value)
        return value

    wait = get

    def collect(self, intermediate: bool = False, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
        """Wait for this task and then for every result it led to, yielding `(result, value)`
        breadth first, as Celery does: the tasks it sent (its children) and the AsyncResult or
        GroupResult it returned, then theirs. `kwargs` go to each `get()` (e.g. `timeout=`).

        A child that the task sent without returning it is found through its stored row, so it is
        only followed once it has one (it started with track_started, or finished)."""
        seen: set = {self.id}
        pending: deque = deque([self])
        while pending:
            node = pending.popleft()
            value = node.get(**kwargs)
            yield node, value
            for child in _followers(node, value):
                key = child.id if child.id is not None else id(child)
                if key not in seen:
                    seen.add(key)
                    pending.append(child)

    def maybe_throw_parent(self) -> None:
        """Raise the exception of the nearest failed ancestor known in memory, if any."""
        node = self._parent
        while node is not None:
            if isinstance(node, AsyncResult) and node.failed():
                raise node.result
            node = getattr(node, "_parent", None)

    def _wait(self, timeout: float | None, on_message: Callable[[dict], None] | None, interval: float | None):
        deadline = None if timeout is None else time.monotonic() + timeout
        recheck = interval if interval and interval > 0 else _FIRST_RECHECK
        seen = None
        just_sent = self._sent_at is not None and time.monotonic() - self._sent_at < notify.FRESH
        if on_message is None and (self._ready_row is not None or not just_sent):
            # Not sent from here moments ago: it has often finished already, and a finished task's
            # row needs no subscription around it (on PostgreSQL a LISTEN and an UNLISTEN).
            row = self._fetch()
            if row is not None and row.state in states.READY_STATES:
                return row
        # Just sent from here and no progress wanted: the task cannot have finished long ago, so
        # block on its outcome list at once (one command) instead of reading the row first.
        fresh = on_message is None and just_sent and notify.awaits_outcome()
        with notify.listen(self.id, outcome_only=fresh) as wait:
            while True:
                row = None if fresh else self._fetch()
                fresh = False
                if on_message is not None and row is not None and (row.state, row.meta) != seen:
                    seen = (row.state, row.meta)
                    on_message({"task_id": self.id, "status": row.state, "result": value_of(row),
                                "traceback": row.traceback})
                if row is not None and row.state in states.READY_STATES:
                    return row
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"task {self.id} was not ready within {timeout} s")
                notice = wait(recheck if remaining is None else min(remaining, recheck))
                if notice and notice != b"1" and on_message is None:
                    carried = from_notice(self.id, notice)  # the outcome itself: no second read
                    if carried is not None:
                        return carried
                if not interval:
                    recheck = min(recheck * 2, _MAX_RECHECK)

    # -- control -------------------------------------------------------------------------------

    def forget(self) -> None:
        store.forget(self.id)
        self._ready_row = None

    def revoke(self, terminate: bool = False, signal: str | None = None, **_: Any) -> None:
        """Mark revoked (final): no worker starts it after this; with `terminate`, a worker running
        it stops it (prefork pool), within about a second."""
        control.revoke([self.id], terminate=terminate, signal=signal)
        self._ready_row = None

    # -- graph ---------------------------------------------------------------------------------

    @property
    def parent(self) -> AsyncResult | GroupResult | None:
        if self._parent is not None:
            return self._parent
        row = self._fetch()
        if row is not None and row.parent_id:
            return GroupResult.restore(row.parent_id) or AsyncResult(row.parent_id)
        return None

    @parent.setter
    def parent(self, value: AsyncResult | None) -> None:
        self._parent = value

    @property
    def children(self) -> list[AsyncResult]:
        return [AsyncResult(task_id, parent=self) for task_id in store.children_ids(self.id)]

    def as_tuple(self) -> tuple:
        parent = self._parent
        return ((self.id, parent.as_tuple() if parent is not None else None), None)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<AsyncResult: {self.id}>"

    def __str__(self) -> str:
        return self.id


class EagerResult(AsyncResult):
    """The result of an eager run, held in memory (it is also stored unless ignore_result)."""

    def __init__(self, id: str, task_name: str, state: str, value: Any, traceback: str | None = None):
        super().__init__(id, task_name)
        self._state, self._value, self._traceback = state, value, traceback

    state = property(lambda self: self._state)
    status = state
    result = property(lambda self: self._value)
    info = result
    traceback = property(lambda self: self._traceback)

    def get(self, timeout: float | None = None, propagate: bool = True, interval: float | None = None,
            on_message: Callable[[dict], None] | None = None, disable_sync_subtasks: bool = True,
            follow_parents: bool = True, callback: Callable[[str, Any], None] | None = None, **_: Any) -> Any:
        if propagate and self._state in states.PROPAGATE_STATES and isinstance(self._value, BaseException):
            raise self._value
        if callback is not None:
            callback(self.id, self._value)
        return self._value

    wait = get


class GroupResult:
    """The results of a group's members, in definition order."""

    def __init__(self, id: str | None = None, results: list | None = None, parent: Any = None, **_: Any):
        self.id = id
        self.results = list(results or [])
        self._parent = parent

    parent = property(lambda self: self._parent, lambda self, value: setattr(self, "_parent", value))
    children = property(lambda self: self.results)

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int):
        return self.results[index]

    def ready(self) -> bool:
        return all(result.ready() for result in self.results)

    def successful(self) -> bool:
        return all(result.successful() for result in self.results)

    def failed(self) -> bool:
        return any(result.failed() for result in self.results)

    def waiting(self) -> bool:
        return not self.ready()

    def completed_count(self) -> int:
        return sum(1 for result in self.results if result.successful())

    def join(self, timeout: float | None = None, propagate: bool = True, interval: float | None = None,
             callback: Callable[[str, Any], None] | None = None, disable_sync_subtasks: bool = True,
             **kwargs: Any) -> list:
        """Every member's result, in definition order; `timeout` bounds the whole wait.

        With `callback`, each member's value goes to `callback(task_id, value)` as it is known,
        and the list returned is empty, as in Celery."""
        _refuse_inside_a_task(disable_sync_subtasks)
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            value = result.get(timeout=remaining, propagate=propagate, interval=interval,
                               disable_sync_subtasks=False, **kwargs)
            if callback is not None:
                callback(result.id, value)
            else:
                values.append(value)
        return values

    def get(self, timeout: float | None = None, propagate: bool = True, **kwargs: Any) -> list:
        return self.join(timeout=timeout, propagate=propagate, **kwargs)

    join_native = join  # Celery's faster join for some backends: the same here

    def revoke(self, terminate: bool = False, signal: str | None = None, **_: Any) -> None:
        control.revoke([r.id for r in _leaves(self)], terminate=terminate, signal=signal)

    def forget(self) -> None:
        for result in self.results:
            result.forget()
        self.delete()

    def save(self) -> GroupResult:
        if self.id is None:
            raise ValueError("GroupResult.save() needs the group's id: GroupResult(id, results)")
        store.save_group(self.id, [result.as_tuple() for result in self.results])
        return self

    def delete(self) -> None:
        if self.id is not None:
            store.delete_group(self.id)

    @classmethod
    def restore(cls, group_id: str, **_: Any) -> GroupResult | None:
        """The saved group with this id, or None."""
        members = store.restore_group(group_id)
        if members is None:
            return None
        return cls(group_id, [result_from_tuple(member) for member in members])

    def as_tuple(self) -> tuple:
        parent = self._parent
        return ((self.id, parent.as_tuple() if parent is not None else None),
                [result.as_tuple() for result in self.results])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroupResult) and other.id == self.id and other.results == self.results

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"


def _leaves(result) -> list[AsyncResult]:
    if isinstance(result, GroupResult):
        return [leaf for member in result.results for leaf in _leaves(member)]
    return [result]


def _followers(node: Any, value: Any) -> list:
    """What `collect()` visits after `node`: a group's members; a task's children and the result
    it returned (stored by the worker as its tuple form, flagged as such: a plain value of that
    shape is not followed)."""
    if isinstance(node, GroupResult):
        return list(node.results)
    followers = list(node.children)
    if isinstance(value, (AsyncResult, GroupResult)):  # an eager run's: the object itself
        followers.append(value)
    elif (returned := store.returned_result(node.id)) is not None:
        followers.append(result_from_tuple(returned))
    return followers


def _refuse_inside_a_task(disable_sync_subtasks: bool) -> None:
    if disable_sync_subtasks and in_worker_task():
        raise RuntimeError("Never call result.get() within a task: it can deadlock the worker. "
                           "Chain the work instead (a chain, a chord or a link callback).")


def result_from_tuple(value: Any) -> AsyncResult | GroupResult | None:
    """Rebuild a result from `as_tuple()` output, also after a JSON round trip, at any depth."""
    if value is None:
        return None
    (result_id, parent), members = value
    parent_result = result_from_tuple(parent) if parent else None
    if members is not None:
        return GroupResult(result_id, [result_from_tuple(member) for member in members], parent=parent_result)
    return AsyncResult(result_id, parent=parent_result)
