"""The Task class and the @task decorator: calling, sending, retrying and reporting progress."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Concatenate, Literal, overload

from asgiref.sync import sync_to_async

from . import ratelimits, registry, store
from .canvas import Signature, chunks, xmap, xstarmap
from .exceptions import MaxRetriesExceededError, Retry
from .producer import PUBLISH_DEFAULTS, call_args, call_kwargs, send
from .request import Request, current_request, request_context
from .result import AsyncResult


class Task[**P, R]:
    """Base class of every task; subclass it and pass `base=` to customise hooks.

    Generic for type checkers only: `@task` on `def add(x: int, y: int) -> int` gives a
    `Task[(x: int, y: int), int]`, so `add(1, 2)` is an int and `add.delay("x")` is an error."""

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
    # Celery's options with a meaning here (docs/options.md).
    typing: bool = True  # check a call's arguments against the function's signature, in the caller
    retry_kwargs: Mapping[str, Any] = MappingProxyType({})  # passed to retry() by autoretry_for
    expires: float | timedelta | datetime | None = None  # default expiry of every call
    priority: int | None = None  # default message priority
    throws: tuple[type[BaseException], ...] = ()  # expected errors: logged at INFO, without traceback
    serializer: str = "json"  # the only one: taskqueue never pickles
    rate_limit: str | float | None = None  # "10/s", "100/m", "1000/h": global across workers (ratelimits.py)
    # Accepted and kept, without effect: a message is always acked after its result is stored, and
    # the message of a lost worker is always delivered again.
    acks_late: bool | None = None
    acks_on_failure_or_timeout: bool | None = None
    acks_on_failure: bool | None = None
    acks_on_timeout: bool | None = None
    reject_on_worker_lost: bool | None = None
    # Accepted and kept, without effect (AMQP, events, pickling and result-backend details).
    trail: bool = True
    send_events: bool = True
    store_errors_even_if_ignored: bool | None = None
    store_eager_result: bool | None = None
    compression: str | None = None
    backend: Any = None
    resultrepr_maxsize: int = 1024
    exchange: str | None = None
    exchange_type: str | None = None
    routing_key: str | None = None
    delivery_mode: int | str | None = None
    abstract: bool = True
    MaxRetriesExceededError = MaxRetriesExceededError  # as on Celery's Task: `except self.MaxRetriesExceededError`
    run: Callable[..., Any]

    # -- calling -------------------------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
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

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "rate_limit":  # checked first: an invalid rate changes nothing
            ratelimits.parse(value)
        super().__setattr__(name, value)
        if name in PUBLISH_DEFAULTS:  # e.g. `add.priority = 5`: the per-task message defaults change
            self.__dict__.pop("_publish_defaults", None)

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
        if not self.typing:  # @task(typing=False): the call is not checked (after the fast path: free)
            return
        params = self._signature()
        try:
            params.bind(*((None,) if self.bind else ()), *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}(): {exc}") from None

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult:
        """Send with positional and keyword arguments; returns the AsyncResult."""
        return self.apply_async(args, kwargs)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult:
        """`delay` for async code (an async view): the publish runs in Django's sync thread."""
        return await sync_to_async(self.apply_async)(args, kwargs)

    async def aapply_async(self, args: tuple | list | None = None, kwargs: Mapping[str, Any] | None = None,
                           **options: Any) -> AsyncResult:
        return await sync_to_async(self.apply_async)(args, kwargs, **options)

    def apply_async(self, args: tuple | list | None = None, kwargs: Mapping[str, Any] | None = None,
                    **options: Any) -> AsyncResult:
        """Send with options (queue, countdown, eta, expires, task_id, link, link_error, headers...;
        every Celery option is accepted: docs/options.md)."""
        if type(args) is not tuple:
            args = call_args(args)
        if type(kwargs) is not dict:
            kwargs = call_kwargs(kwargs)
        self.check_arguments(args, kwargs)
        return send(self.name, args, kwargs, task=self, **options)

    def apply(self, args: tuple | list | None = None, kwargs: Mapping[str, Any] | None = None, *,
              throw: bool | None = None, logfile: Any = None, loglevel: Any = None, **options: Any) -> AsyncResult:
        """Run now, in this process, through the worker's code path (results are stored); returns an
        EagerResult. A failure stays on it (state FAILURE, `.result` the exception, `.traceback`)
        unless `throw` (default: TASKQUEUE_TASK_EAGER_PROPAGATES) re-raises it here, as in Celery.
        `logfile` and `loglevel` are accepted and ignored: the run logs through `logging`."""
        return send(self.name, call_args(args), call_kwargs(kwargs), task=self, eager=True, throw=throw,
                    **options)

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
                 } | {"autoretry_for", "dont_autoretry_for", "lock_key", "name",
                      "Request", "Strategy"}  # Celery's custom request class and strategy: kept, no effect
# Options of Celery's decorator itself: `shared`/`lazy` (tasks here are always shared and made at
# once) are accepted without effect; `filter` is applied to the task made.
_DECORATOR_OPTIONS = {"shared", "lazy", "filter", "pydantic", "pydantic_strict", "pydantic_context",
                      "pydantic_dump_kwargs"}


# For type checkers: the Task made keeps the function's parameters and return type (with bind=True,
# those after `self`). With base= it is typed as that class, whose calls are not checked.
@overload
def task[**P, R](fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task[T: Task](*, base: type[T], **options: Any) -> Callable[[Callable[..., Any]], T]: ...
@overload
def task[**P, R](*, bind: Literal[True],
                 **options: Any) -> Callable[[Callable[Concatenate[Any, P], R]], Task[P, R]]: ...
@overload
def task[**P, R](*, bind: Literal[False] = False, **options: Any) -> Callable[[Callable[P, R]], Task[P, R]]: ...
@overload
def task(*, bind: bool, **options: Any) -> Callable[[Callable[..., Any]], Task]: ...
def task(*args: Any, **options: Any) -> Any:
    """Turn a function into a Task: `@task` or `@task(name=..., bind=True, queue=..., ...)`.

    Every option of Celery's `@app.task` is accepted (docs/options.md), as
    is any attribute of the `base=` class; an unknown name is a TypeError, a bad value (rate_limit,
    serializer) a ValueError, at import."""
    if len(args) == 1 and callable(args[0]) and not options:
        return _make_task(args[0], {})
    if args:
        raise TypeError("@task takes keyword options only, e.g. @task(name='x', bind=True)")
    return lambda fn: _make_task(fn, options)


shared_task = task


def _make_task(fn: Callable[..., Any], options: dict[str, Any]) -> Task:
    options = dict(options)
    base = options.pop("base", None) or Task
    if not (isinstance(base, type) and issubclass(base, Task)):
        raise TypeError(f"base= must be a subclass of taskqueue.Task, not {base!r}")
    decorator = {key: options.pop(key) for key in _DECORATOR_OPTIONS & set(options)}
    if decorator.get("pydantic"):
        raise ValueError("@task(pydantic=True) is not supported: taskqueue passes JSON values to the task; "
                         "validate them with your model inside the task instead")
    unknown = {key for key in options if key not in _OPTION_NAMES and not hasattr(base, key)}
    if unknown:
        raise TypeError(f"unknown @task option(s): {', '.join(sorted(unknown))}")
    ratelimits.parse(options.get("rate_limit"))  # a bad rate fails the import, not the worker
    name = options.pop("name", None) or f"{fn.__module__}.{fn.__name__}"
    attrs = {"name": name, "run": staticmethod(fn), "__doc__": fn.__doc__, "__module__": fn.__module__,
             "__wrapped__": fn, **options}
    for key in ("autoretry_for", "dont_autoretry_for", "throws"):
        if key in attrs:
            attrs[key] = tuple(attrs[key]) if isinstance(attrs[key], (list, tuple, set)) else (attrs[key],)
    if "retry_kwargs" in attrs:
        attrs["retry_kwargs"] = MappingProxyType(dict(attrs["retry_kwargs"] or {}))
    cls: type[Task] = type(fn.__name__, (base,), attrs)
    _check_options(cls)
    if cls.typing is None:  # Celery's None: the app's strict_typing, True by default
        cls.typing = True
    instance = cls()
    registry.register(instance)
    if decorator.get("filter") is not None:
        return decorator["filter"](instance)
    return instance


def _check_options(cls: type[Task]) -> None:
    """ValueError at import for an option value taskqueue cannot honour."""
    if cls.serializer not in (None, "json"):
        raise ValueError(f"{cls.name}: serializer={cls.serializer!r} is not supported: taskqueue sends and stores "
                         "JSON only (never pickle); remove the option or use serializer='json'")
    if cls.expires is not None and not isinstance(cls.expires, (int, float, timedelta, datetime)):
        raise TypeError(f"{cls.name}: expires= must be seconds, a timedelta or a datetime, not {cls.expires!r}")
    if cls.priority is not None and (isinstance(cls.priority, bool) or not isinstance(cls.priority, int)):
        raise TypeError(f"{cls.name}: priority= must be an int (0-9), not {cls.priority!r}")
