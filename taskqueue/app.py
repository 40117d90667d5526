"""The app object, so code written as `app = Celery("proj")` / `@app.task` / `app.conf.update(...)`
keeps its shape. Configuration is per process, as Django settings are: every app object reads
and writes the same one (see `conf` for how `app.conf` lays values over the Django settings).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from importlib.util import find_spec
from types import MappingProxyType, ModuleType
from typing import Any, Concatenate, Literal, overload

from django.apps import apps
from django.core.signals import setting_changed

from . import celeryconf, conf, registry, signals
from .canvas import signature
from .conf import get_settings
from .control import Control
from .producer import call_args, call_kwargs, send
from .result import AsyncResult, GroupResult
from .task import Task, task

_DJANGO_SETTINGS = ("django.conf:settings", "django.conf.settings")
_namespaces: set[str] = set()  # prefixes of Django settings read through config_from_object
_apps: weakref.WeakSet[Celery] = weakref.WeakSet()  # told `on_after_configure` etc. once Django is ready
_added_periodic_tasks: dict[str, dict[str, Any]] = {}  # app.add_periodic_task: beat_schedule entries
logger = logging.getLogger("taskqueue.app")


class Conf:
    """`app.conf`: Celery's setting names (and ours, lowercase) read and written as attributes
    or items. A write takes effect at once in this process; make it before workers start."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        field = celeryconf.field_for(name, conf.FIELD_NAMES)
        if field is not None:
            return getattr(get_settings(), field)
        missing = object()
        value = conf.layered_value(name.lower(), missing)
        if value is not missing:
            return value
        if name.lower() in celeryconf.CELERY_SETTINGS:
            return None  # a Celery setting without effect here, not set
        raise AttributeError(f"no setting {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def __setitem__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and hasattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)

    def update(self, values: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Set several settings at once (Celery names or ours); refused values raise at once."""
        conf.add_layer(_translate({**dict(values or {}), **kwargs}))
        _import_now()

    def setdefault(self, name: str, value: Any) -> Any:
        if name not in self:
            self.update({name: value})
        return getattr(self, name)

    def table(self) -> dict[str, Any]:
        """Our settings now in effect, by lowercase field name."""
        settings = get_settings()
        return {field.lower(): getattr(settings, field) for field in sorted(conf.FIELD_NAMES)}

    def __repr__(self) -> str:
        return f"<Conf {self.table()!r}>"


def _translate(values: Mapping[str, Any]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, value in values.items():
        layer.update(celeryconf.translate(name, value, conf.FIELD_NAMES))
    return layer


def _settings_of(source: Any, namespace: str | None) -> dict[str, Any]:
    """The settings an object gives: with a namespace, its `NAMESPACE_*` attributes (keys); without,
    the attributes that name a setting (a module's imports and helpers are not settings)."""
    if isinstance(source, Mapping):
        items = dict(source)
    elif source is conf.django_settings_object():
        items = conf.django_settings_named(f"{namespace}_" if namespace else "")
    else:
        items = {name: getattr(source, name) for name in dir(source) if not name.startswith("_")}
    picked = {}
    for name, value in items.items():
        key = celeryconf.strip_namespace(name, namespace)
        if key is not None and (namespace or celeryconf.is_setting(key, conf.FIELD_NAMES)):
            picked[key] = value
    return picked


def _import_now() -> None:
    """Import the configured task modules if Django's apps are loaded (before that, the app
    registry's `ready` imports them, through registry.autodiscover)."""
    if apps.ready:
        for module in get_settings().IMPORTS:
            import_module(module)


class Celery:
    """The app: `Celery("proj", broker=..., backend=..., include=[...])`, `@app.task`, `app.conf`,
    `app.control`, `app.signals`. Tasks are registered globally (by name), as `@shared_task` does."""

    def __init__(self, main: str | None = None, loader: Any = None, backend: str | None = None,
                 *, broker: str | None = None, include: Iterable[str] | None = None,
                 config_source: Any = None, changes: Mapping[str, Any] | None = None,
                 namespace: str | None = None, task_cls: type[Task] | str | None = None, **_: Any):
        self.main = main
        self.namespace = namespace
        self.Task: type[Task] = _task_class(task_cls) if task_cls else Task
        self.conf = Conf()
        self.control = Control(self)
        self.signals = signals
        # Celery's app signals (sender: this app), sent once Django's apps are ready and every
        # tasks.py is imported: connect `setup_periodic_tasks` to `on_after_configure` as in Celery.
        self.on_configure = signals.Signal()
        self.on_after_configure = signals.Signal()
        self.on_after_finalize = signals.Signal()
        self.on_after_fork = signals.Signal()  # accepted for connecting, not sent
        self.configured = False
        _apps.add(self)
        celeryconf.result_backend(backend)
        settings: dict[str, Any] = dict(changes or {})
        if broker:
            settings["broker_url"] = broker
        if include:
            settings["include"] = list(include)
        if settings:
            self.conf.update(settings)
        if config_source is not None:
            self.config_from_object(config_source)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.main}>"

    # The same overloads as taskqueue.task (see there): an app's own Task class (`task_cls=`) is a
    # subclass, so the types hold.
    @overload
    def task[**P, R](self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task[T: Task](self, *, base: type[T], **options: Any) -> Callable[[Callable[..., Any]], T]: ...
    @overload
    def task[**P, R](self, *, bind: Literal[True],
                     **options: Any) -> Callable[[Callable[Concatenate[Any, P], R]], Task[P, R]]: ...
    @overload
    def task[**P, R](self, *, bind: Literal[False] = False,
                     **options: Any) -> Callable[[Callable[P, R]], Task[P, R]]: ...
    @overload
    def task(self, *, bind: bool, **options: Any) -> Callable[[Callable[..., Any]], Task]: ...
    def task(self, *args: Any, **options: Any) -> Any:
        if self.Task is not Task:
            options.setdefault("base", self.Task)
        return task(*args, **options)

    shared_task = task

    def send_task(self, name: str, args: tuple | list | None = None, kwargs: dict | None = None,
                  **options: Any) -> AsyncResult:
        return send_task(name, args, kwargs, **options)

    # the classes, as Celery's app attributes are: app.AsyncResult(id), app.GroupResult.restore(id)
    AsyncResult = AsyncResult
    GroupResult = GroupResult

    def signature(self, *args: Any, **kwargs: Any):
        return signature(*args, **kwargs)

    @property
    def tasks(self) -> Mapping[str, Task]:
        return MappingProxyType(registry.all_tasks())

    def config_from_object(self, obj: Any, silent: bool = False, force: bool = False,
                           namespace: str | None = None) -> None:
        """Read settings from an object, a module or a "module:attribute" path. Django's settings
        ("django.conf:settings") are read when our settings are next computed (so this can run while
        they load); another object is read now. Later configuration wins over earlier."""
        namespace = namespace or self.namespace
        if isinstance(obj, str) and obj in _DJANGO_SETTINGS:
            obj = conf.django_settings_object()
        elif isinstance(obj, str):
            try:
                obj = _load(obj)
            except ImportError:
                if silent:
                    return
                raise
        if obj is conf.django_settings_object():
            if apps.ready:  # settings loaded: a refused value fails here, not at the first task
                _translate(_settings_of(obj, namespace))
            _namespaces.add(f"{namespace}_" if namespace else "")
            conf.add_layer(lambda: _translate(_settings_of(obj, namespace)))
        else:
            conf.add_layer(_translate(_settings_of(obj, namespace)))
        _import_now()

    def autodiscover_tasks(self, packages: Iterable[str] | Callable[[], Iterable[str]] | None = None,
                           related_name: str | None = "tasks", force: bool = False) -> None:
        """Every installed app's tasks.py is imported anyway; named packages get their
        `related_name` module imported too (those without one are skipped, as Celery does)."""
        if not packages or not related_name:
            return

        def modules() -> dict[str, Any]:
            names = packages() if callable(packages) else packages
            found = tuple(f"{p}.{related_name}" for p in names if _has_module(f"{p}.{related_name}"))
            return {"IMPORTS": found}

        conf.add_layer(modules if callable(packages) and not apps.ready else modules())
        _import_now()

    def add_periodic_task(self, schedule: Any, sig: Any, args: tuple = (), kwargs: Mapping[str, Any] | None = None,
                          name: str | None = None, **options: Any) -> str:
        """A `beat_schedule` entry made in code (`schedule`: seconds, a timedelta, `schedule` or
        `crontab`), written to the PeriodicTask table when a scheduler starts, as the settings'
        are. Returns its name: `name`, else the signature's repr."""
        if args or kwargs:
            sig = sig.clone(args=tuple(args), kwargs=dict(kwargs or {}))
        key = name or repr(sig)
        if name is None and key in _added_periodic_tasks:
            logger.warning("Periodic task %r replaced an unnamed one of the same call: pass name= to keep both", key)
        _added_periodic_tasks[key] = {"schedule": schedule, "task": sig.name, "args": tuple(sig.args),
                                      "kwargs": dict(sig.kwargs), "options": {**sig.options, **options}}
        return key

    def finalize(self, auto: bool = False) -> None:
        """Send `on_configure`, `on_after_configure` and `on_after_finalize` (once per app), as
        Django's app registry does for every app once every tasks.py is imported."""
        if self.configured:
            return
        self.configured = True
        self.on_configure.send(sender=self)
        self.on_after_configure.send(sender=self, source=self.conf)
        self.on_after_finalize.send(sender=self)

    def set_default(self) -> None:
        """Accepted: there is one configuration per process."""

    def set_current(self) -> None:
        """Accepted: there is one configuration per process."""


def finalize_apps() -> None:
    """Every app's configuration signals, once Django's apps are ready (apps.py)."""
    for each in list(_apps):
        each.finalize()


def added_periodic_tasks() -> dict[str, dict[str, Any]]:
    """The entries `add_periodic_task` made in this process (the scheduler writes them with
    TASKQUEUE_BEAT_SCHEDULE's)."""
    return dict(_added_periodic_tasks)


def _has_module(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except ModuleNotFoundError:  # the package itself is missing
        return False


def _load(path: str) -> Any:
    """"pkg.module:attr", "pkg.module.attr" or "pkg.module"."""
    if ":" in path:
        module, _, attr = path.partition(":")
        return getattr(import_module(module), attr)
    try:
        return import_module(path)
    except ImportError:
        module, _, attr = path.rpartition(".")
        if not module:
            raise
        loaded: ModuleType = import_module(module)
        if not hasattr(loaded, attr):
            raise
        return getattr(loaded, attr)


def _task_class(task_cls: type[Task] | str) -> type[Task]:
    return _load(task_cls) if isinstance(task_cls, str) else task_cls


def _on_setting_changed(setting: str, **_: Any) -> None:
    if any(setting.startswith(prefix) for prefix in _namespaces):
        conf.reset_settings()


setting_changed.connect(_on_setting_changed)

TaskQueue = Celery


def send_task(name: str, args: tuple | list | None = None, kwargs: dict | None = None, **options: Any) -> AsyncResult:
    """Enqueue a task by name, without importing it (it only has to be registered in the worker)."""
    return send(name, call_args(args), call_kwargs(kwargs), task=registry.find(name), **options)


app = Celery("default")
