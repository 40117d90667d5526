"""Fixture tasks, one per behaviour the tests exercise."""

import asyncio
import os
import time
from datetime import UTC, datetime

from django.dispatch import receiver

from taskqueue import AsyncResult, Task, app, get_task_logger, group, task
from taskqueue.exceptions import SoftTimeLimitExceeded
from taskqueue.signals import worker_shutdown

from .models import Run

logger = get_task_logger(__name__)


@task
def add(x, y):
    return x + y


@task
def mul(x, y):
    return x * y


@task
def tsum(numbers):
    return sum(numbers)


@task
def echo(value):
    return value


@task
def fail(*args):
    raise ValueError("boom")


@task(bind=True)
def whoami(self):
    return {"id": self.request.id, "retries": self.request.retries, "queue": self.request.queue,
            "hostname": self.request.hostname, "is_eager": self.request.is_eager,
            "priority": self.request.delivery_info["priority"]}


@task(bind=True)
def lineage(self, *previous):
    """The ids this run sees in its request (the canvas lineage tests)."""
    request = self.request
    return {"id": request.id, "root_id": request.root_id, "parent_id": request.parent_id, "group_id": request.group_id}


@task(bind=True)
def progress(self, steps):
    for step in range(1, steps + 1):
        self.update_state(state="PROGRESS", meta={"progress": step * 100 // steps})
        time.sleep(0.2)
    return "done"


@task(bind=True, max_retries=3, default_retry_delay=0)
def always_retry(self, label):
    Run.objects.create(label=label, task_id=self.request.id, pid=os.getpid(), started=time.time())
    raise self.retry(exc=KeyError("again"))


@task(bind=True, autoretry_for=(IOError,), retry_backoff=0.25, retry_jitter=False, max_retries=4)
def flaky(self, label):
    """Always fails; retried after 0.25, 0.5, 1 and 2 s (a backoff factor of a quarter second)."""
    Run.objects.create(label=label, task_id=self.request.id, pid=os.getpid(), started=time.time())
    raise OSError("flaky")


if os.environ.get("TASKQUEUE_TEST_TYPO_FIXED"):  # registered only where the "fix" was deployed

    @task(name="tests.tasks.typo_fixed")
    def typo_fixed(x):
        return x * 10


@task(bind=True)
def record(self, label, seconds=0.0):
    """Sleep `seconds` and record the run's start and end times."""
    run = Run.objects.create(label=label, task_id=self.request.id or "", pid=os.getpid(), started=time.time())
    time.sleep(seconds)
    run.finished = time.time()
    run.save(update_fields=["finished"])
    return run.pid


@task(bind=True, lock_key="key")
def locked(self, key, label, seconds=0.3):
    run = Run.objects.create(label=label, task_id=self.request.id, pid=os.getpid(), started=time.time())
    time.sleep(seconds)
    run.finished = time.time()
    run.save(update_fields=["finished"])
    return key


@task(soft_time_limit=0.5)
def soft_limited():
    try:
        time.sleep(5)
    except SoftTimeLimitExceeded:
        return "caught soft limit"
    return "not interrupted"


@task(time_limit=1)
def hard_limited(padding=""):
    time.sleep(30)


@task(bind=True)
def suicide(self, label):
    """Kill our own process on the first delivery; succeed when redelivered."""
    first = not Run.objects.filter(label=label).exists()
    Run.objects.create(label=label, task_id=self.request.id, pid=os.getpid(), started=time.time())
    if first:
        os.kill(os.getpid(), 9)
    return "survived"


class Hooks(Task):
    def on_success(self, retval, task_id, args, kwargs):
        Run.objects.create(label=f"on_success:{retval}", task_id=task_id)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        Run.objects.create(label=f"on_failure:{type(exc).__name__}", task_id=task_id)

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        Run.objects.create(label=f"after_return:{status}", task_id=task_id)


@task(base=Hooks)
def hooked(x):
    if x < 0:
        raise ValueError("negative")
    return x


@task
def on_error_id(task_id):
    Run.objects.create(label="errback-id", task_id=task_id)


@task
def on_error_request(request, exc, traceback):
    Run.objects.create(label=f"errback-request:{type(exc).__name__}", task_id=request.id)


@task
def log_something(text):
    logger.info("logged: %s", text)
    return text


@task
def waits_on_another():
    return add.delay(1, 1).get(timeout=5)


# -- canvas fixtures: the new-device-login workflow of the talk --------------------------------

@task
def check_device(user_id, device, fail_at=None):
    if fail_at == "check":
        raise ValueError("check failed")
    return {"user": user_id, "device": device, "new": True, "fail_at": fail_at}


@task
def notify_user(info):
    if info["fail_at"] == "notify":
        raise ValueError("notify failed")
    return {"notified": info["user"], "fail_at": info["fail_at"]}


@task
def save_login_event(info):
    return {"saved": info["device"], "fail_at": info["fail_at"]}


@task
def post_to_risk_api(results):
    if results[0]["fail_at"] == "risk":
        raise ValueError("risk api down")
    return {"risk": "low", "inputs": len(results)}


@task
def post_process(response):
    return f"verdict:{response['risk']}:{response['inputs']}"


@task
def errback_label(task_id, label):
    Run.objects.create(label=label, task_id=task_id)


@task
def slow_add(x, y, seconds=0.05):
    time.sleep(seconds)
    return x + y


@task
def add_when_released(x, y, gate, timeout=30.0):
    """x + y once the file `gate` exists (the test creates it), at most `timeout` seconds on."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate} was never created")
        time.sleep(0.02)
    return x + y


@task
def record_list(values, label="body"):
    Run.objects.create(label=label, task_id=str(len(values)), pid=os.getpid(), started=time.time())
    return values


@task
def tick(label):
    Run.objects.create(label=label, started=time.time())
    return label


_GROWING: dict[str, list] = {}


@task
def grow(key, item):
    """Appends to a list that outlives the call and returns that same list object."""
    values = _GROWING.setdefault(key, [])
    values.append(item)
    return values


@task
def bad_return():
    return object()


@receiver(worker_shutdown)
def _mark_worker_shutdown(sender, **kwargs):
    """Tests that watch `worker_shutdown` name a file: each process that sends it adds its PID."""
    path = os.environ.get("TASKQUEUE_TEST_SHUTDOWN_MARK")
    if path:
        with open(path, "a") as mark:
            mark.write(f"{os.getpid()}\n")


@task(bind=True)
def record_echo(self, label, value):
    """Record the run under `label` and return `value` as given."""
    Run.objects.create(label=label, task_id=self.request.id or "", pid=os.getpid(), started=time.time())
    return value


@task
def exits(code):
    raise SystemExit(code)


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("this exception cannot be printed")

    __repr__ = __str__


@task
def raises_unprintable():
    raise Unprintable(object())


@task
def fail_with(*args):
    raise ValueError(*args)


@task(bind=True)
def tally(self, path, n, seconds=0.0):
    """Append this run's task id to the file `path` (counts runs without the database), sleep, return n."""
    with open(path, "a") as runs:
        runs.write(f"{self.request.id}\n")
    time.sleep(seconds)
    return n


@task(bind=True)
async def async_tally(self, path, n, seconds=0.0):
    """tally, awaiting its sleep: for the asyncio pool."""
    with open(path, "a") as runs:
        runs.write(f"{self.request.id}\n")
    await asyncio.sleep(seconds)
    return n


@task
def loses_its_database_once(label):
    """The first run breaks this process's database connection under itself, as a server restart
    would, and queries through it; a later run succeeds."""
    from django.db import connection

    if not Run.objects.filter(label=label).exists():
        Run.objects.create(label=label, pid=os.getpid(), started=time.time())
        connection.connection.close()  # the socket is gone; Django does not know yet
        Run.objects.count()
    return "ran again"


_LEAKED: list[bytearray] = []


@task
def leak(megabytes):
    """Keep `megabytes` MB alive in this process for good (a leaking task); return the PID."""
    _LEAKED.append(bytearray(megabytes * 1024 * 1024))
    return os.getpid()


@task(bind=True, rate_limit="5/s")
def rate_limited(self, label):
    Run.objects.create(label=label, task_id=self.request.id, pid=os.getpid(), started=time.time())
    return label


@task(bind=True)
def limited_at_run_time(self, label):
    Run.objects.create(label=label, task_id=self.request.id, pid=os.getpid(), started=time.time())
    return label


# -- Celery's results API, calling and task options (tests/e2e/test_celery_calling.py) ---------------


@task
def square(i):
    return i * i


@task
def sends_square(i):
    """Returns the AsyncResult of a task it sent (stored as Celery's tuple form)."""
    return square.delay(i)


@task
def fans_out(n):
    """Returns the GroupResult of a group it applied, whose members return AsyncResults."""
    return group(sends_square.s(i) for i in range(n))()


@task(bind=True, autoretry_for=(KeyError,), retry_kwargs={"max_retries": 1, "countdown": 0})
def retried_by_kwargs(self, label):
    """Fails every time: retry_kwargs allow one retry, at once, so it runs twice."""
    Run.objects.create(label=label, task_id=self.request.id, pid=os.getpid(), started=time.time())
    raise KeyError(label)


@task(throws=(KeyError,))
def raises_expected(label):
    raise KeyError(label)


@task(expires=datetime(2000, 1, 1, tzinfo=UTC))
def expired_by_default():
    return "ran"


@task(typing=False)
def untyped(x):
    return x


@task(rate_limit="100/m", acks_late=True, reject_on_worker_lost=True, priority=7, serializer="json",
      expires=60, track_started=True, trail=True, send_events=False, store_errors_even_if_ignored=True,
      compression="gzip", acks_on_failure_or_timeout=True, resultrepr_maxsize=100, shared=True, lazy=False)
def ported(x):
    """A task decorated with Celery options that taskqueue accepts (most have no effect here)."""
    return x


@task(bind=True, max_retries=3, default_retry_delay=0)
async def async_add(self, x, y, fail_times=0):
    """An `async def` task: awaits, retries `fail_times` times, then returns x + y."""
    await asyncio.sleep(0.01)
    if self.request.retries < fail_times:
        raise self.retry(exc=ValueError(f"attempt {self.request.retries}"))
    return x + y


@task
async def async_nap(seconds):
    """Sleeps on the loop; returns its process and when it started and finished."""
    started = time.time()
    await asyncio.sleep(seconds)
    return [os.getpid(), started, time.time()]


@task(soft_time_limit=0.3)
async def async_sleep(label, seconds):
    """Sleeps; cancelled at its soft limit, it records that it could clean up."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        await asyncio.to_thread(Run.objects.create, label=f"{label}-cleaned-up", pid=os.getpid())
        raise
    return seconds


@task(bind=True, max_retries=2, default_retry_delay=0)
def measured(self, outcome="ok"):
    """Run by the metrics test only, so its figures count nothing else: "fail" fails, "retry"
    retries twice, then fails."""
    if outcome == "fail":
        raise ValueError("measured failure")
    if outcome == "retry":
        raise self.retry(exc=KeyError("again"))
    return outcome


@task
def fails_until_fixed(value, label):
    """Fails until a Run labelled `fixed:<label>` exists (a bug fixed before a resume), then returns `value`."""
    Run.objects.create(label=f"ran:{label}")
    if not Run.objects.filter(label=f"fixed:{label}").exists():
        raise ValueError(f"{label} is not fixed yet")
    return value


# -- the seeds' own tasks (notes-celery-cheatsheet.md), as they write them, for tests/e2e/test_seeds.py --

@app.task(name="sum-of-two-numbers")
def sum_of_two_numbers(x, y):
    return x + y


@app.task
def subtract(x, y):
    return x - y


@app.task
def multiply(x, y):
    return x * y


class MyBase(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        print("{0!r} failed: {1!r}".format(task_id, exc))  # noqa: T201, UP030, UP032 - the seed's
        Run.objects.create(label=f"MyBase.on_failure:{type(exc).__name__}", task_id=task_id)


@app.task(base=MyBase)
def add_with_base(x, y):
    raise KeyError()


@app.task
def error_handler(uuid):
    result = AsyncResult(uuid)
    # the seed's `result.get(propagte=False)` (a typo) would block inside a task: Celery refuses that too
    exc = result.get(propagate=False, disable_sync_subtasks=False)
    print("Task {} raised exception".format(uuid))  # noqa: T201, UP032
    print(result.traceback)  # noqa: T201
    Run.objects.create(label=f"error_handler:{type(exc).__name__}", task_id=uuid)


@app.task
def success_callback(response):
    print("Processing task finished successfully!")  # noqa: T201
    Run.objects.create(label=f"success_callback:{response}")


@app.task(name="remote.processing")
def remote_processing():
    return "processed"
