"""manage.py runworker: parse the options and hand them to the Supervisor."""

from __future__ import annotations

import logging
import os

from django.core.management.base import BaseCommand, CommandError

from ...log import TaskContextFilter
from ...worker import WorkerConfig
from ...worker.supervisor import Supervisor

POOLS = ("prefork", "threads", "solo")


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Run a taskqueue worker: consumes the given queues until SIGTERM/SIGINT."

    def add_arguments(self, parser):
        parser.add_argument("-c", "--concurrency", type=positive_int, default=os.cpu_count() or 1,
                            help="number of consumer processes/threads (default: CPU count)")
        parser.add_argument("-Q", "--queues", default="", help="comma-separated queues (default: the default queue)")
        parser.add_argument("--pool", choices=POOLS, default="prefork")
        parser.add_argument("--max-tasks-per-child", type=positive_int, default=None)
        parser.add_argument("--prefetch", type=positive_int, default=None,
                            help="messages each consumer reserves at once (default TASKQUEUE_PREFETCH)")
        parser.add_argument("--hostname", default=None)
        parser.add_argument("-B", "--beat", action="store_true",
                            help="also run the scheduler (periodic tasks) in a child process")
        parser.add_argument("-l", "--loglevel", default="info")

    def handle(self, *args, **options):
        from ...conf import get_settings
        from ...worker.databases import apply_database_override

        apply_database_override()
        self._configure_logging(options["loglevel"])
        config = WorkerConfig(
            concurrency=1 if options["pool"] == "solo" else options["concurrency"],
            queues=[q.strip() for q in options["queues"].split(",") if q.strip()],
            pool=options["pool"], max_tasks_per_child=options["max_tasks_per_child"],
            prefetch=options["prefetch"] or get_settings().PREFETCH, beat=options["beat"],
        )
        if options["hostname"]:
            config.hostname = options["hostname"]
        try:
            Supervisor(config).run()
        except KeyboardInterrupt:
            raise CommandError("interrupted") from None

    def _configure_logging(self, level: str) -> None:
        numeric = logging.getLevelName(level.upper())
        if not isinstance(numeric, int):
            raise CommandError(f"unknown log level {level!r}")
        handler = logging.StreamHandler()
        handler.addFilter(TaskContextFilter())
        handler.setFormatter(logging.Formatter(
            "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s] %(message)s"))
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(numeric)
