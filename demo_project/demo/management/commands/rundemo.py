"""manage.py rundemo: migrate, start a worker (with the scheduler) and the site, stop all on Ctrl-C.

`--check` runs both stories headless instead, prints a short report and exits 0 or 1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

DEMO_USER, DEMO_PASSWORD = "demo", "demo"


class Command(BaseCommand):
    help = "Run the taskqueue demo: worker, scheduler and site (Ctrl-C stops everything)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("-c", "--concurrency", type=int, default=4)
        parser.add_argument("--check", action="store_true", help="run both workflows headless and report")

    def handle(self, *args, port: int, concurrency: int, check: bool, **options):
        call_command("migrate", verbosity=0)
        _ensure_demo_user()
        if check:
            port = _free_port()
        elif not _port_is_free(port):
            raise CommandError(f"port {port} is already in use (another rundemo?): stop it or pass --port")
        env = {**os.environ, "DEMO_RISK_API_URL": f"http://127.0.0.1:{port}/risk-api/score"}
        with _children(self._commands(port, concurrency, check), env) as children:
            _wait_for_port(port, children)
            if check:
                from demo_project.demo.check import run_check

                settings.DEMO_RISK_API_URL = env["DEMO_RISK_API_URL"]
                ok = run_check(self.stdout, DEMO_USER)
                if not ok:
                    raise CommandError("demo check failed")
                return
            interrupted = threading.Event()  # set before the URLs are printed: no Ctrl-C is missed
            previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
            self.stdout.write(f"\nDemo running at http://127.0.0.1:{port}/  (log in as {DEMO_USER} / "
                              f"{DEMO_PASSWORD})\n"
                              f"  new-device login: http://127.0.0.1:{port}/logins/\n"
                              f"  payment scoring:  http://127.0.0.1:{port}/payments/\n"
                              f"  admin:            http://127.0.0.1:{port}/admin/  (same login)\n"
                              f"The worker's console shows each task's outcome (--loglevel info).\n"
                              f"Ctrl-C stops everything.\n")
            try:
                stopped = _wait_for_interrupt(children, interrupted)
            finally:
                signal.signal(signal.SIGINT, previous)
            if stopped is not None:
                raise CommandError(f"the demo's {stopped} stopped on its own; see its output above")

    def _commands(self, port: int, concurrency: int, check: bool) -> list[list[str]]:
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        worker = [*manage, "runworker", "-c", str(concurrency), "-Q", "default,scoring", "--loglevel", "info"]
        if not check:
            worker.append("--beat")
        return [worker, [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"]]


def _ensure_demo_user() -> None:
    """The account the pages and the admin log in with; one that exists is left as it is."""
    user_model = get_user_model()
    if not user_model.objects.filter(username=DEMO_USER).exists():
        user_model.objects.create_superuser(DEMO_USER, "demo@example.com", DEMO_PASSWORD)


@contextmanager
def _children(commands: list[list[str]], env: dict):
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} if "--check" in sys.argv else {}
    children = [subprocess.Popen(command, env=env, **quiet) for command in commands]
    try:
        yield children
    finally:
        _stop(children)


def _stop(children: list[subprocess.Popen]) -> None:
    """Ask each child still running to stop (the worker finishes its tasks), then wait for all."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


def _wait_for_interrupt(children: list[subprocess.Popen], interrupted: threading.Event) -> str | None:
    """Serve until Ctrl-C, or until a child stops: then return which ("worker" or "site"). Ctrl-C
    reaches the children too: the worker then finishes its running tasks, so wait for them before
    `_stop` signals what is left."""
    while not interrupted.is_set() and all(child.poll() is None for child in children):
        interrupted.wait(0.5)
    if not interrupted.is_set():
        return "worker" if children[0].poll() is not None else "site"
    print("\nStopping the worker and the site…", flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(child.poll() is None for child in children):
        time.sleep(0.1)
    return None


def _wait_for_port(port: int, children: list[subprocess.Popen], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            raise CommandError("a demo process stopped while starting")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise CommandError(f"the site did not start on port {port} within {timeout} s")


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
