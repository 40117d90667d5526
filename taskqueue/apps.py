"""Django app config: autodiscover every app's tasks.py and connect settings reloads; nothing else."""

from __future__ import annotations

from django.apps import AppConfig


class TaskqueueConfig(AppConfig):
    name = "taskqueue"
    verbose_name = "Task queue"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from . import checks, registry  # noqa: F401 - checks registers itself
        from .conf import reset_settings

        setting_changed.connect(_on_setting_changed)
        reset_settings()
        registry.autodiscover()


def _on_setting_changed(setting: str, **kwargs) -> None:
    if setting.startswith("TASKQUEUE_"):
        from .brokers import reset_broker
        from .conf import reset_settings

        reset_settings()
        reset_broker()
