"""manage.py taskqueue status|purge|inspect|cleanup: operator tools."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from ... import control, operations


class Command(BaseCommand):
    help = "Operate taskqueue: queue sizes and result counts, purge a queue, inspect a task, clean up results."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        status = sub.add_parser("status", help="queues (ready, delayed, in flight, paused), result counts by state, "
                                               "workers (live and dead) and the latest dead letters")
        status.add_argument("--json", action="store_true", help="print one JSON document")
        purge = sub.add_parser("purge", help="delete every waiting message of a queue")
        purge.add_argument("queue")
        inspect = sub.add_parser("inspect", help="show one task's stored state")
        inspect.add_argument("task_id")
        cleanup = sub.add_parser("cleanup", help="delete results older than TASKQUEUE_RESULT_EXPIRES")
        cleanup.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args, action: str, **options):
        if action == "status":
            report = operations.status()
            if options["json"]:
                self.stdout.write(json.dumps(report, indent=2, default=str))
            else:
                self._print_status(report)
        elif action == "purge":
            self.stdout.write(f"purged {control.purge(options['queue'])} message(s) from {options['queue']!r}")
        elif action == "inspect":
            info = control.inspect(options["task_id"])
            if info is None:
                raise CommandError(f"no task {options['task_id']!r} is stored or queued")
            self._print(info)
        elif action == "cleanup":
            self.stdout.write(f"deleted {control.cleanup(options['batch_size'])} expired result(s)")

    def _print_status(self, report: dict) -> None:
        self.stdout.write("queues:")
        for name, queue in report["queues"].items():
            unknown = queue["delayed"] is None  # a broker that cannot tell (RabbitMQ)
            age = ("unknown" if unknown else "-") if queue["oldest_age_s"] is None else f"{queue['oldest_age_s']:.1f} s"
            delayed = "unknown" if unknown else queue["delayed"]
            self.stdout.write(f"  {name}: ready {queue['ready']}, delayed {delayed}, in flight "
                              f"{queue['in_flight']}, oldest {age}{', PAUSED' if queue['paused'] else ''}")
        self.stdout.write("results:")
        self._print(report["results"], "  ")
        self.stdout.write("workers:")
        for worker in report["workers"]:
            beat = "-" if worker["last_heartbeat_s_ago"] is None else f"{worker['last_heartbeat_s_ago']:.1f} s ago"
            self.stdout.write(
                f"  {worker['key']}: {'live' if worker['alive'] else 'DEAD'}, pid {worker['pid']}, queues "
                f"{','.join(worker['queues']) or '-'}, {worker['pool']} x{worker['concurrency']}, heartbeat {beat}, "
                f"running {len(worker['running'])}, processed {worker['processed']}, failed {worker['failed']}")
        letters = report["dead_letters"]
        self.stdout.write(f"dead letters: {letters['count']}")
        for letter in letters["latest"]:
            self.stdout.write(f"  {letter['received']} {letter['task'] or '?'} [{letter['message_id']}] "
                              f"on {letter['queue']}: {letter['reason']}")

    def _print(self, data: dict, indent: str = "") -> None:
        for key, value in data.items():
            if isinstance(value, dict):
                self.stdout.write(f"{indent}{key}:")
                self._print(value, indent + "  ")
            else:
                self.stdout.write(f"{indent}{key}: {value}")
