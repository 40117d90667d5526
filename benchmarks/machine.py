"""Machine facts (cores, versions) and the context limits of this machine's Redis, PostgreSQL and
RabbitMQ."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata

import psutil

from .common import (
    AMQP_HOST,
    AMQP_PASSWORD,
    AMQP_PORT,
    AMQP_USER,
    HUEY_DRAMATIQ_REDIS_DB,
    PG_DSN,
    REDIS_HOST,
    REDIS_PORT,
    REPO_ROOT,
    delete_redis_keys,
    delete_vhost,
    percentile,
    rabbitmq_problem,
    rabbitmq_version,
    recreate_vhost,
    redis_client,
)

PACKAGES = ["django-taskqueue", "Django", "celery", "kombu", "billiard", "django-celery-results", "huey", "dramatiq",
            "django-tasks-db", "procrastinate", "redis", "hiredis", "amqp", "psycopg", "matplotlib"]


def facts() -> dict:
    import psycopg

    client = redis_client(0)
    redis_version = client.info("server")["redis_version"]
    client.close()
    with psycopg.connect(PG_DSN, connect_timeout=10) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu_model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cores": os.cpu_count(), "physical_cores": psutil.cpu_count(logical=False), "cpu_model": cpu_model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "platform": platform.platform(),
        "python": platform.python_version(), "redis": redis_version, "postgresql": pg_version,
        "rabbitmq": rabbitmq_version(), "packages": versions,
    }


def redis_limits(requests: int = 100_000, timeout: float = 120) -> dict:
    """`redis-benchmark -q -t lpush,rpop -n N` on our own DB (it writes the key `mylist`, no flush)."""
    if not shutil.which("redis-benchmark"):
        return {"skipped": "redis-benchmark not installed"}
    cmd = ["redis-benchmark", "-h", REDIS_HOST, "-p", str(REDIS_PORT), "--dbnum", str(HUEY_DRAMATIQ_REDIS_DB),
           "-q", "-t", "lpush,rpop", "-n", str(requests)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout
    finally:
        delete_redis_keys(HUEY_DRAMATIQ_REDIS_DB, ["mylist"])
    rates = {}
    for line in out.replace("\r", "\n").splitlines():
        match = re.match(r"^(LPUSH|RPOP):\s+([\d.]+) requests per second", line.strip())
        if match:
            rates[match.group(1).lower() + "_per_s"] = float(match.group(2))
    return {"command": " ".join(cmd), **rates}


def postgres_limits(timeout: float = 180) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.pglimits"], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=timeout)
    if proc.returncode:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


LIMITS_VHOST = "bench_limits"
# (label, queue type, delivery mode): durable messages wait for the disk before RabbitMQ confirms
CONFIRM_KINDS = (("quorum", "quorum", 2), ("classic durable", "classic", 2), ("classic transient", "classic", 1))


def rabbitmq_limits(messages: int = 2_000) -> dict:
    """What one producer gets from RabbitMQ when each publish waits for its confirm (as `delay()`
    does on the RabbitMQ broker): rate and p50 per queue kind, 300-byte messages, bare py-amqp."""
    if problem := rabbitmq_problem():
        return {"skipped": problem}
    import amqp
    from amqp import spec

    recreate_vhost(LIMITS_VHOST)
    connection = amqp.Connection(host=f"{AMQP_HOST}:{AMQP_PORT}", userid=AMQP_USER, password=AMQP_PASSWORD,
                                 virtual_host=LIMITS_VHOST, heartbeat=0, connect_timeout=5)
    try:
        connection.connect()
        channel = connection.channel()
        channel.confirm_select()
        confirmed = [0]
        channel.events["basic_ack"].add(lambda tag, multiple: confirmed.__setitem__(0, tag))
        figures = {}
        for label, queue_type, mode in CONFIRM_KINDS:
            queue = f"limits-{queue_type}-{mode}"
            channel.queue_declare(queue, durable=True, auto_delete=False, arguments={"x-queue-type": queue_type})
            waits = []
            started = time.perf_counter()
            for _ in range(messages):
                sent = time.perf_counter()
                channel.basic_publish(amqp.Message(b"x" * 300, delivery_mode=mode), exchange="", routing_key=queue)
                target = confirmed[0] + 1
                while confirmed[0] < target:
                    channel.wait([spec.Basic.Ack, spec.Basic.Nack], timeout=10)
                waits.append(time.perf_counter() - sent)
            elapsed = time.perf_counter() - started
            waits.sort()
            figures[label] = {"per_s": messages / elapsed, "p50_ms": percentile(waits, 0.5) * 1000}
            channel.queue_delete(queue)
    finally:
        connection.collect()
        delete_vhost(LIMITS_VHOST)
    return {"messages": messages, "confirmed_publish": figures}


def context_limits() -> dict:
    return {"redis": redis_limits(), "postgresql": postgres_limits(), "rabbitmq": rabbitmq_limits()}
