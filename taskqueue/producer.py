"""The one path to the broker: options → routing → signed Message → (after commit) publish."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from . import message as wire
from . import registry, runtime, signals
from .brokers import Outgoing, broker_kind, get_broker
from .conf import get_settings
from .outages import is_outage
from .request import current_request
from .result import AsyncResult
from .retries import publish_waits
from .routing import route
from .utils import new_id

if TYPE_CHECKING:
    from .task import Task

logger = logging.getLogger("taskqueue.producer")

_in_the_transaction = contextvars.ContextVar("in_the_transaction", default=False)


@contextlib.contextmanager
def sending_in_the_transaction() -> Iterator[None]:
    """Sends made inside a transaction here belong to it on the database broker too: its rows are
    inserted in the transaction (not after the commit, where a crash or a failed insert would lose
    them); the other brokers stage them in the outbox, as they always do."""
    token = _in_the_transaction.set(True)
    try:
        yield
    finally:
        _in_the_transaction.reset(token)

_MESSAGE_OPTIONS = {"priority", "parent_id", "root_id", "group_id", "group_index", "time_limit",
                    "soft_time_limit", "ignore_result", "chain", "chord", "retries"}
_KNOWN_OPTIONS = _MESSAGE_OPTIONS | {"queue", "routing_key", "countdown", "eta", "expires", "task_id",
                                     "link", "link_error", "headers", "eager", "lock"}
# Celery's other apply_async/send_task/kombu publish options: checked only when one is passed
# (`_check_other_options`), so a plain call pays nothing for them. `retry`/`retry_policy` shape the
# publish's retries (`_publish`); `serializer` must be JSON; the rest have no meaning here.
_OTHER_OPTIONS = {"retry", "retry_policy", "serializer", "compression", "shadow", "add_to_parent", "connection",
                  "producer", "publisher", "exchange", "exchange_type", "declare", "mandatory", "immediate",
                  "delivery_mode", "content_type", "content_encoding", "reply_to", "correlation_id", "router",
                  "route_name", "result_cls", "task_type", "stamped_headers", "stamps", "replaced_task_nesting",
                  "timeout", "confirm_timeout", "expiration"}
# Task attributes that are defaults of its messages (cached per task: `_publish_defaults`).
PUBLISH_DEFAULTS = ("time_limit", "soft_time_limit", "ignore_result", "priority", "expires")


def call_args(args: Any) -> tuple:
    """A call's positional arguments as a tuple; TypeError in the caller for anything but a list or
    tuple, as Celery refuses it ("task args must be a list or tuple")."""
    if not args:
        return ()
    if not isinstance(args, (list, tuple)):
        raise TypeError(f"task args must be a list or tuple, not {type(args).__name__}")
    return tuple(args)


def call_kwargs(kwargs: Any) -> dict:
    """A call's keyword arguments as a dict; TypeError in the caller for anything but a mapping."""
    if not kwargs:
        return {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"task keyword arguments must be a mapping, not {type(kwargs).__name__}")
    return dict(kwargs)


def send(task_name: str, args: tuple, kwargs: dict, *, task: Task | None = None, throw: bool | None = None,
         **options: Any) -> AsyncResult:
    """Build, sign and publish one task message (or run it now in eager mode; `throw` re-raises a
    failure of that run, TASKQUEUE_TASK_EAGER_PROPAGATES when None)."""
    settings = get_settings()
    msg, body = _prepare(task_name, args, kwargs, task, options, settings)
    if options.get("eager") or settings.TASK_ALWAYS_EAGER:
        return runtime.get().run_eager(msg) if throw is None else runtime.get().run_eager(msg, throw)
    _publish([(msg, body)], settings, options)
    result = AsyncResult(msg.id, task_name=task_name)
    result._sent_at = time.monotonic()
    return result


def send_many(calls: list[tuple[Any, tuple, dict, dict]]) -> None:
    """Send (signature, args, kwargs, options) calls in one broker round trip (group members)."""
    settings = get_settings()
    prepared = []
    for sig, args, kwargs, options in calls:
        task = registry.find(sig.name)
        if task is not None:
            task.check_arguments(args, kwargs)
        prepared.append(_prepare(sig.name, args, kwargs, task, options, settings))
    if settings.TASK_ALWAYS_EAGER or any(options.get("eager") for *_, options in calls):
        run_eager = runtime.get().run_eager
        for msg, _body in prepared:
            run_eager(msg)
        return
    if prepared:
        _publish(prepared, settings)


def _prepare(task_name: str, args: tuple, kwargs: dict, task: Task | None, options: dict,
             settings) -> tuple[wire.Message, bytes]:
    unknown = set(options) - _KNOWN_OPTIONS
    if unknown:
        _check_other_options(task_name, unknown, options)
    msg = build_message(task_name, args, kwargs, task, options, settings)
    return msg, wire.encode(msg, settings.signing_key)  # TypeError here, before anything is sent


def _check_other_options(task_name: str, names: set[str], options: dict) -> None:
    unknown = names - _OTHER_OPTIONS
    if unknown:
        raise TypeError(f"unknown option(s) for {task_name}: {', '.join(sorted(unknown))}")
    if options.get("serializer") not in (None, "json"):
        raise ValueError(f"serializer={options['serializer']!r} is not supported: taskqueue sends JSON only "
                         "(never pickle)")
    if options.get("retry_policy") is not None:
        next(publish_waits(options["retry_policy"]), None)  # TypeError now for an unknown key


RESUMED_HEADER = "taskqueue_resumed"  # set by `resume`: a new attempt of a failed task, under a key of its own


def message_key(msg: wire.Message) -> str:
    """The broker's key of a message: its task id, marked for a retry or a resumed attempt. A key
    still queued or in flight is not queued twice (a follow-up sent again after a crash), so an
    attempt sent while the one before may still be held needs a key of its own."""
    key = msg.id if not msg.retries else f"{msg.id}~{msg.retries}"
    resumed = msg.headers.get(RESUMED_HEADER) if msg.headers else None
    return f"{key}~r{resumed}" if resumed else key


def _publish(prepared: list[tuple[wire.Message, bytes]], settings, options: dict | None = None) -> None:
    items = [Outgoing(msg.queue, message_key(msg), body,
                      datetime.fromisoformat(msg.eta).timestamp() if msg.eta else None, msg.priority)
             for msg, body in prepared]

    def publish(remember: float | None = None, retry: bool = True) -> None:
        if signals.before_task_publish.receivers:
            for msg, _ in prepared:
                signals.before_task_publish.send(sender=msg.task, **signals.publish_arguments(msg))
        try:
            get_broker().publish(items, remember=remember)
        except Exception as exc:
            if not (retry and _unreachable(exc)):
                raise
            _publish_again(items, remember, exc, options)
        if signals.after_task_publish.receivers:
            for msg, _ in prepared:
                signals.after_task_publish.send(sender=msg.task, **signals.publish_arguments(msg, after=True))

    if not (settings.ENQUEUE_ON_COMMIT and connections[DEFAULT_DB_ALIAS].in_atomic_block):
        publish()
    elif settings.OUTBOX and broker_kind(settings.BROKER_URL) != "database":
        from . import outbox  # waits for Django's app registry: it imports the models

        outbox.stage(items, DEFAULT_DB_ALIAS)
        transaction.on_commit(lambda: _publish_staged(publish, len(items), outbox.remember_for()),
                              using=DEFAULT_DB_ALIAS)
    elif _in_the_transaction.get() and broker_kind(settings.BROKER_URL) == "database":
        publish()  # its rows join the transaction
    else:
        transaction.on_commit(publish)


def _publish_again(items: list[Outgoing], remember: float | None,
                   error: Exception, options: dict | None) -> None:
    """Celery's `retry`/`retry_policy` (on by default): publish again while the broker is
    unreachable, waiting as the policy says; the last error is raised when it gives up."""
    if options and options.get("retry") is not None and not options["retry"]:  # None: Celery's default, on
        raise error
    for attempt, wait in enumerate(publish_waits(options.get("retry_policy") if options else None), 1):
        logger.warning("Could not publish (%s: %s); attempt %d again in %.2f s", type(error).__name__, error,
                       attempt, wait)
        time.sleep(wait)
        try:
            get_broker().publish(items, remember=remember)
            return
        except Exception as exc:
            if not _unreachable(exc):
                raise
            error = exc
    raise error


def _unreachable(exc: Exception) -> bool:
    """A broker that cannot be reached, worth another publish. Not a timeout: the server took the
    connection and did not answer within TASKQUEUE_BROKER_TIMEOUT, which bounds how long a caller
    waits (and the message may have been stored)."""
    return is_outage(exc) and not isinstance(exc, (TimeoutError, redis.TimeoutError))


def _publish_staged(publish, count: int, remember: float) -> None:
    """After commit: publish, and have the broker remember it did, so the worker that clears the
    outbox rows later does not publish them again. A broker that is down does not fail the caller,
    whose transaction has committed: a worker publishes the rows when the broker is back."""
    try:
        publish(remember, retry=False)  # the outbox rows are the retry
    except Exception as exc:
        logger.warning("Could not publish %d message(s) after commit (%s); they stay in the outbox and a "
                       "worker publishes them when the broker is back", count, exc)


def build_message(task_name: str, args: tuple, kwargs: dict, task: Task | None, options: dict,
                  settings) -> wire.Message:
    fields: dict[str, Any] = {}
    if options:
        fields = {name: value for name, value in options.items() if name in _MESSAGE_OPTIONS and value is not None}
        for name in ("eta", "expires", "link", "link_error", "headers"):
            if options.get(name):
                fields[name] = _OPTION_CONVERTERS[name](options[name])
        if options.get("countdown") is not None:
            fields["eta"] = _eta(options["countdown"], None)
    queue = options.get("queue") or options.get("routing_key") or _routed_queue(task_name, task, settings)
    if task is not None:
        defaults = task.__dict__.get("_publish_defaults")
        if defaults is None:
            defaults = _publish_defaults(task)
        for name, value in defaults:  # usually none
            if name not in fields:
                fields[name] = value if name != "expires" else _expires(value)
    parent = current_request()
    if parent.id and "parent_id" not in fields:
        fields["parent_id"] = parent.id
        fields["root_id"] = parent.root_id or parent.id
    lock = options.get("lock") or (task.lock_value(args, kwargs) if task is not None else None)
    if lock:
        fields["lock"] = lock
    return wire.Message(id=options.get("task_id") or new_id(), task=task_name, args=tuple(args),
                        kwargs=dict(kwargs), queue=queue, **fields)


def _publish_defaults(task: Task) -> tuple[tuple[str, Any], ...]:
    """The task's attributes that its messages take when the call does not set them (cached on the
    task; `Task.__setattr__` drops the cache when one changes)."""
    defaults = tuple((name, getattr(task, name)) for name in PUBLISH_DEFAULTS if getattr(task, name))
    task.__dict__["_publish_defaults"] = defaults
    return defaults


_routes: dict[str, tuple[object, str]] = {}


def _routed_queue(task_name: str, task: Task | None, settings) -> str:
    """The queue TASKQUEUE_ROUTES gives a task (cached per settings object), else its own queue."""
    cached = _routes.get(task_name)
    if cached is None or cached[0] is not settings:
        cached = _routes[task_name] = (settings, route(task_name, settings.ROUTES, None, ""))
    return cached[1] or getattr(task, "queue", None) or settings.DEFAULT_QUEUE


def _eta(countdown: float | None, eta: datetime | None) -> str | None:
    if countdown is not None:
        return (timezone.now() + timedelta(seconds=float(countdown))).astimezone(UTC).isoformat()
    if eta is None:
        return None
    if timezone.is_naive(eta):
        eta = timezone.make_aware(eta)
    return eta.astimezone(UTC).isoformat()


def _expires(expires: float | int | datetime | timedelta | None) -> str | None:
    if expires is None:
        return None
    if isinstance(expires, (int, float)):
        expires = timezone.now() + timedelta(seconds=expires)
    elif isinstance(expires, timedelta):
        expires = timezone.now() + expires
    elif timezone.is_naive(expires):
        expires = timezone.make_aware(expires)
    return expires.astimezone(UTC).isoformat()


def _signature_list(value: Any) -> list:
    if not value:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    return [dict(item) for item in items]


_OPTION_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "eta": lambda eta: _eta(None, eta), "expires": _expires, "link": _signature_list,
    "link_error": _signature_list, "headers": dict}
