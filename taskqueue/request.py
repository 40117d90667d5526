"""The context of the running task (`self.request`), kept in a contextvar."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .log import current_task_ids

if TYPE_CHECKING:
    from .message import Message


@dataclass
class Request:
    """What a bound task sees as `self.request`."""

    id: str | None = None
    task: str | None = None
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    retries: int = 0
    eta: datetime | None = None
    expires: datetime | None = None
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    group_index: int | None = None
    queue: str | None = None
    priority: int | None = None
    hostname: str | None = None
    is_eager: bool = False
    called_directly: bool = True
    headers: dict = field(default_factory=dict)
    link: list = field(default_factory=list)
    link_error: list = field(default_factory=list)
    chain: Sequence[dict] = field(default_factory=list)  # the steps after this one, next one last (read-only)
    chord: dict | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    ignore_result: bool = False
    lock: str | None = None

    @classmethod
    def from_message(cls, message: Message, hostname: str | None, is_eager: bool = False) -> Request:
        """The request of a worker (or eager) run of `message`."""
        return cls(
            id=message.id, task=message.task, args=message.args, kwargs=message.kwargs, retries=message.retries,
            eta=message.eta_datetime, expires=message.expires_datetime, parent_id=message.parent_id,
            root_id=message.root_id or message.id, group_id=message.group_id, group_index=message.group_index,
            queue=message.queue, priority=message.priority, hostname=hostname, is_eager=is_eager, called_directly=False,
            headers=message.headers, link=message.link, link_error=message.link_error, chain=message.chain,
            chord=message.chord, time_limit=message.time_limit, soft_time_limit=message.soft_time_limit,
            ignore_result=message.ignore_result, lock=message.lock)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)

    @property
    def delivery_info(self) -> dict:
        return {"routing_key": self.queue, "exchange": "", "priority": self.priority}


_EMPTY = Request()
_current: contextvars.ContextVar[Request | None] = contextvars.ContextVar("taskqueue_request", default=None)


def current_request() -> Request:
    return _current.get() or _EMPTY


def in_worker_task() -> bool:
    """True while a worker (not a direct call) runs a task in this context."""
    request = _current.get()
    return request is not None and not request.called_directly and not request.is_eager


@contextmanager
def request_context(request: Request) -> Iterator[Request]:
    token = _current.set(request)
    ids_token = current_task_ids.set((request.id or "-", request.task or "-"))
    try:
        yield request
    finally:
        _current.reset(token)
        current_task_ids.reset(ids_token)
