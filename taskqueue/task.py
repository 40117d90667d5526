"""The Task class and the @task decorator: calling, sending, retrying and reporting progress."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any

from . import ratelimits, registry, store
from .canvas import Signature, chunks, xmap, xstarmap
from .exceptions import MaxRetriesExceededError, Retry
from .producer import send
from .request import Request, current_request, request_context
from .result import AsyncResult


class Task:
    """Base class of every task; subclass it and pass `base=` to customise hooks."""

    name: str = ""
    bind: bool = False
    queue: str | None = None
    max_retries: int | None = 3
    default_retry_delay: float = 180
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_backoff: bool | int | float = False
    retry_backoff_max: float = 600
    retry_jitter: bool = True
    time_limit: float | None = None
    soft_time_limit: float | None = None
    ignore_result: bool = False
    track_started: bool | None = None  # None: TASKQUEUE_TRACK_STARTED decides
    lock_key: str | Callable[..., Any] | None = None
    rate_limit: str | float | None = None  # "10/s", "100/m", "1000/h": global across workers (ratelimits.py)
    run: Callable[..., Any]

    # -- calling -------------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run in this process, now; `self.request` describes a direct call."""
        if self.bind:
            request = current_request()
            if request.task == self.name:  # the worker or eager path already set the context
                return self.run(self, *args, **kwargs)
        with request_context(Request(task=self.name, args=args, kwargs=kwargs)):
            return self.run(self, *args, **kwargs) if self.bind else self.run(*args, **kwargs)

    def _signature(self) -> inspect.Signature:
        cached = self.__dict__.get("_run_signature")
        if cached is None:
            cached = self.__dict__["_run_signature"] = inspect.signature(self.run)
        return cached

    @property
    def request(self) -> Request:
        return current_request()

    def _positional_range(self) -> tuple[int, int] | None:
        """(required, accepted) positional counts when the signature has only plain parameters."""
        if "_positional" not in self.__dict__:
            params = list(self._signature().parameters.values())[1 if self.bind else 0:]
            plain = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
            required = sum(1 for p in params if p.default is p.empty)
            self.__dict__["_positional"] = (required, len(params)) if plain else None
        return self.__dict__["_positional"]

    def check_arguments(self, args: tuple, kwargs: dict) -> None:
        """TypeError in the caller when the call does not match the function's signature."""
        if not kwargs:  # the usual delay(*args): counting is enough, bind() costs more than a send
            counts = self._positional_range()
            if counts is not None and counts[0] <= len(args) <= counts[1]:
                return
        params = self._signature()
        try:
            params.bind(*((None,) if self.bind else ()), *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}(): {exc}") from None

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """Send with positional and keyword arguments; returns the AsyncResult."""
        return self.apply_async(args, kwargs)

    def apply_async(self, args: tuple | list | None = None, kwargs: dict | None = None,
                    **options: Any) -> AsyncResult:
        """Send with options (queue, countdown, eta, expires, task_id, link, link_error, headers...)."""
        args, kwargs = tuple(args or ()), dict(kwargs or {})
        self.check_arguments(args, kwargs)
        return send(self.name, args, kwargs, task=self, **options)

    def apply(self, args: tuple | list | None = None, kwargs: dict | None = None, **options: Any) -> AsyncResult:
        """Run now, in this process, through the worker's code path (results are stored)."""
        return send(self.name, tuple(args or ()), dict(kwargs or {}), task=self, eager=True, **options)

    def AsyncResult(self, task_id: str) -> AsyncResult:  # noqa: N802 - Celery's name
        return AsyncResult(task_id, task_name=self.name)

    # -- signatures ----------------------------------------------------------------------------

    def signature(self, args: tuple | list | None = None, kwargs: dict | None = None,
                  **options: Any) -> Signature:
        immutable = options.pop("immutable", False)
        return Signature(self.name, args, kwargs, options=options, immutable=immutable)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        return self.signature(args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        return self.signature(args, kwargs, immutable=True)

    subtask = signature

    def map(self, it: Any) -> Signature:
        """One message that calls this task on each item, in order."""
        return xmap(self.s(), it)

    def starmap(self, it: Any) -> Signature:
        return xstarmap(self.s(), it)

    def chunks(self, it: Any, n: int) -> Signature:
        """Split the calls `self(*item)` into messages of `n` items each (a group of starmaps)."""
        return chunks(self.s(), it, n)

    # -- inside a running task -----------------------------------------------------------------

    def retry(self, args: tuple | None = None, kwargs: dict | None = None, exc: BaseException | None = None,
              throw: bool = True, eta: datetime | None = None, countdown: float | None = None,
              max_retries: int | None = None, **options: Any) -> Retry:
        """Ask for another attempt; raises Retry, or the error once max_retries is reached."""
        request = self.request
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and request.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"{self.name}[{request.id}] gave up after {request.retries} retries (max_retries={limit})")
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        when = eta if eta is not None else countdown
        retry = Retry(exc=exc, when=when, args=args, kwargs=kwargs, options=options)
        if throw:
            raise retry
        return retry

    def update_state(self, task_id: str | None = None, state: str | None = None,
                     meta: dict | None = None, **_: Any) -> None:
        """Store a custom state (e.g. PROGRESS) that AsyncResult.state / .info show at once."""
        task_id = task_id or self.request.id
        if task_id is None:
            raise ValueError("update_state() needs a task_id outside a running task")
        store.save_state(task_id, state or "PENDING", meta, request=self.request)

    # -- hooks (override in a base class) ------------------------------------------------------

    def on_success(self, retval: Any, task_id: str, args: tuple, kwargs: dict) -> None:
        """Called in the worker after the task returned."""

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        """Called in the worker after the task failed for good."""

    def on_retry(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        """Called in the worker when the task will be retried."""

    def after_return(self, status: str, retval: Any, task_id: str, args: tuple, kwargs: dict,
                     einfo: Any) -> None:
        """Called in the worker after any outcome."""

    def lock_value(self, args: tuple, kwargs: dict) -> str | None:
        """The lock_key value for a call, or None when the task has no lock_key."""
        if self.lock_key is None:
            return None
        if callable(self.lock_key):
            value = self.lock_key(*args, **kwargs)
        else:
            bound = self._signature().bind_partial(*((None,) if self.bind else ()), *args, **kwargs)
            bound.apply_defaults()
            if self.lock_key not in bound.arguments:
                raise TypeError(f"{self.name}: lock_key {self.lock_key!r} is not an argument of the task")
            value = bound.arguments[self.lock_key]
        return None if value is None else f"{self.name}:{value}"

    def __repr__(self) -> str:
        return f"<@task: {self.name}>"


_OPTION_NAMES = {name for name in vars(Task) if not name.startswith("_") and not callable(vars(Task)[name])
                 } | {"autoretry_for", "dont_autoretry_for", "lock_key"}


def task(*args: Any, **options: Any) -> Any:
    """Turn a function into a Task: `@task` or `@task(name=..., bind=True, queue=..., ...)`."""
    if len(args) == 1 and callable(args[0]) and not options:
        return _make_task(args[0], {})
    if args:
        raise TypeError("@task takes keyword options only, e.g. @task(name='x', bind=True)")
    return lambda fn: _make_task(fn, options)


shared_task = task


def _make_task(fn: Callable[..., Any], options: dict[str, Any]) -> Task:
    base = options.pop("base", None) or Task
    if not (isinstance(base, type) and issubclass(base, Task)):
        raise TypeError(f"base= must be a subclass of taskqueue.Task, not {base!r}")
    unknown = set(options) - _OPTION_NAMES - {"name"}
    if unknown:
        raise TypeError(f"unknown @task option(s): {', '.join(sorted(unknown))}")
    ratelimits.parse(options.get("rate_limit"))  # a bad rate fails the import, not the worker
    name = options.pop("name", None) or f"{fn.__module__}.{fn.__name__}"
    attrs = {"name": name, "run": staticmethod(fn), "__doc__": fn.__doc__, "__module__": fn.__module__,
             "__wrapped__": fn, **options}
    for key in ("autoretry_for", "dont_autoretry_for"):
        if key in attrs:
            attrs[key] = tuple(attrs[key])
    cls = type(fn.__name__, (base,), attrs)
    instance = cls()
    registry.register(instance)
    return instance
