"""manage.py runscheduler: send periodic tasks when due, until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import threading

from django.core.management.base import BaseCommand

from ...scheduler import Scheduler
from ...worker.databases import apply_database_override


class Command(BaseCommand):
    help = "Run the taskqueue scheduler: sends the periodic tasks of the admin when they are due."

    def add_arguments(self, parser):
        parser.add_argument("--tick", type=float, default=1.0, help="seconds between checks (default 1)")
        parser.add_argument("-l", "--loglevel", default="info")

    def handle(self, *args, **options):
        apply_database_override()
        logging.basicConfig(level=options["loglevel"].upper(),
                            format="[%(asctime)s: %(levelname)s/scheduler] %(message)s")
        stopping = threading.Event()
        previous = {sig: signal.signal(sig, lambda signum, frame: stopping.set())
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.stdout.write("[taskqueue] scheduler ready")
            self.stdout.flush()
            Scheduler(tick=options["tick"]).run(stopping.is_set)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
