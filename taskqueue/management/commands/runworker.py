"""manage.py runworker: parse the options, start the consumers and supervise them."""

from __future__ import annotations

import os
import signal
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from ... import signals
from ...brokers import get_broker, reset_broker
from ...brokers.leases import bare_connection_supported
from ...conf import get_settings
from ...log import configure_worker_logging
from ...worker import WorkerConfig
from ...worker.banner import banner
from ...worker.controls import record_worker
from ...worker.databases import apply_database_override
from ...worker.keeper import hand_over
from ...worker.pool import ForkLauncher
from ...worker.supervisor import Supervisor

POOLS = ("prefork", "threads", "solo", "asyncio")
ASYNCIO_CONCURRENCY = 100


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Run a taskqueue worker: consumes the given queues until SIGTERM/SIGINT."

    def add_arguments(self, parser):
        parser.add_argument("-c", "--concurrency", type=positive_int, default=None,
                            help="consumer processes/threads (default: CPU count); with -P asyncio, tasks "
                                 f"running at once in its one process (default: {ASYNCIO_CONCURRENCY})")
        parser.add_argument("-Q", "--queues", default="", help="comma-separated queues (default: the default queue)")
        parser.add_argument("-P", "--pool", choices=POOLS, default="prefork",
                            help="prefork (default), threads, solo, or asyncio (one process, its event loop "
                                 "running many async def tasks at once)")
        parser.add_argument("--max-tasks-per-child", type=positive_int, default=None,
                            help="replace a consumer process after it ran this many tasks")
        parser.add_argument("--max-memory-per-child", type=positive_int, default=None, metavar="KIB",
                            help="replace a consumer process once its resident memory passes this many KiB "
                                 "(checked after each batch: the task that passes it completes first)")
        parser.add_argument("--prefetch", type=positive_int, default=None,
                            help="messages each consumer reserves at once (default TASKQUEUE_PREFETCH)")
        parser.add_argument("--hostname", default=None)
        parser.add_argument("-B", "--beat", action="store_true",
                            help="also run the scheduler (periodic tasks) in a child process")
        parser.add_argument("-l", "--loglevel", default="info",
                            help="debug, info (default: a line per finished task), warning (Celery's default: "
                                 "failures only), error or critical")

    def handle(self, *args, **options):
        apply_database_override()
        try:
            configure_worker_logging(options["loglevel"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        settings = get_settings()
        config = WorkerConfig(
            concurrency=1 if options["pool"] == "solo" else options["concurrency"] or (
                ASYNCIO_CONCURRENCY if options["pool"] == "asyncio" else os.cpu_count() or 1),
            queues=[q.strip() for q in options["queues"].split(",") if q.strip()],
            pool=options["pool"], max_tasks_per_child=options["max_tasks_per_child"],
            max_memory_per_child=options["max_memory_per_child"],
            prefetch=options["prefetch"] or settings.PREFETCH, beat=options["beat"],
        )
        if options["hostname"]:
            config.hostname = options["hostname"]
        try:
            self._run(config, options["loglevel"])
        except KeyboardInterrupt:
            raise CommandError("interrupted") from None

    def _run(self, config: WorkerConfig, loglevel: str) -> None:
        """Start the consumers here, with Django loaded; then supervise them here, or, for a prefork
        worker on Redis, from the keeper this process turns into (worker/keeper.py)."""
        settings = get_settings()
        queues = config.queues or [settings.DEFAULT_QUEUE]
        # Children replaced under --max-tasks-per-child or --max-memory-per-child start as fresh
        # interpreters loading Django (about a second, against a fork's few milliseconds): the
        # other consumers keep running meanwhile.
        lean = (config.pool == "prefork" and settings.LEAN_SUPERVISOR
                and bare_connection_supported(settings.BROKER_URL))
        supervisor = Supervisor(config, get_broker(), ForkLauncher(config, queues, signal_shutdown=lean),
                                heartbeat_interval=settings.heartbeat_interval,
                                visibility_timeout=settings.VISIBILITY_TIMEOUT)
        record_worker(config.hostname, supervisor.instance, queues, config.concurrency, config.pool)
        signals.worker_init.send(sender=supervisor)
        previous = supervisor.install_signal_handlers()
        try:
            print(banner(config, lean_supervisor=lean), flush=True)
            supervisor.start()
            signals.worker_ready.send(sender=supervisor)
            # one write: a child's log line (the scheduler's, say) cannot land between the text and its newline
            sys.stdout.write(f"[taskqueue] worker {config.hostname} ready\n")
            sys.stdout.flush()
            if lean:
                connections.close_all()
                reset_broker()
                hand_over(supervisor, broker_url=settings.BROKER_URL, prefix=settings.KEY_PREFIX, queues=queues,
                          loglevel=loglevel)
            supervisor.supervise()
            signals.worker_shutdown.send(sender=supervisor)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
