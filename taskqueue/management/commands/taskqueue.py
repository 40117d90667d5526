"""manage.py taskqueue status|purge|inspect|cleanup: operator tools."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ... import control


class Command(BaseCommand):
    help = "Operate taskqueue: queue sizes and result counts, purge a queue, inspect a task, clean up results."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="queue sizes and result counts by state")
        purge = sub.add_parser("purge", help="delete every waiting message of a queue")
        purge.add_argument("queue")
        inspect = sub.add_parser("inspect", help="show one task's stored state")
        inspect.add_argument("task_id")
        cleanup = sub.add_parser("cleanup", help="delete results older than TASKQUEUE_RESULT_EXPIRES")
        cleanup.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args, action: str, **options):
        if action == "status":
            self._print(control.status())
        elif action == "purge":
            self.stdout.write(f"purged {control.purge(options['queue'])} message(s) from {options['queue']!r}")
        elif action == "inspect":
            info = control.inspect(options["task_id"])
            if info is None:
                raise CommandError(f"no task {options['task_id']!r} is stored or queued")
            self._print(info)
        elif action == "cleanup":
            self.stdout.write(f"deleted {control.cleanup(options['batch_size'])} expired result(s)")

    def _print(self, data: dict, indent: str = "") -> None:
        for key, value in data.items():
            if isinstance(value, dict):
                self.stdout.write(f"{indent}{key}:")
                self._print(value, indent + "  ")
            else:
                self.stdout.write(f"{indent}{key}: {value}")
