"""Machine facts (cores, versions) and the context limits of this machine's Redis and PostgreSQL."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata

import psutil

from .common import (
    HUEY_DRAMATIQ_REDIS_DB,
    PG_DSN,
    REDIS_HOST,
    REDIS_PORT,
    REPO_ROOT,
    delete_redis_keys,
    rabbitmq_version,
    redis_client,
)

PACKAGES = ["django-taskqueue", "Django", "celery", "kombu", "billiard", "django-celery-results", "huey", "dramatiq",
            "redis", "hiredis", "amqp", "psycopg", "matplotlib"]


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


def context_limits() -> dict:
    return {"redis": redis_limits(), "postgresql": postgres_limits()}
