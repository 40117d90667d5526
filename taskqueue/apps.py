"""Django app config: once the app registry is ready, register the worker's runtime (eager runs, revoke
continuations: see `runtime`), autodiscover every app's tasks.py and connect settings reloads."""

from __future__ import annotations

from django.apps import AppConfig


class TaskqueueConfig(AppConfig):
    name = "taskqueue"
    verbose_name = "Task queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        # Here, not at the top: the worker's modules import the models, which are not loaded yet
        # when Django imports this AppConfig.
        from . import checks, registry, runtime  # noqa: F401 - checks registers itself
        from .conf import reset_settings
        from .worker import continuation, execute

        setting_changed.connect(_on_setting_changed)
        reset_settings()
        runtime.register(runtime.Runtime(run_eager=execute.run_eager, revoked=continuation.revoked))
        registry.autodiscover()
        from .app import finalize_apps  # here: app imports the canvas, which needs the models

        finalize_apps()


def _on_setting_changed(setting: str, **kwargs) -> None:
    if setting.startswith("TASKQUEUE_"):
        from .brokers import reset_broker
        from .conf import reset_settings

        reset_settings()
        reset_broker()
