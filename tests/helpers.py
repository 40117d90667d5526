"""Bounded waiting and private redis-server / PostgreSQL / RabbitMQ servers for fault tests."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest


def wait_until(predicate: Callable[[], object], timeout: float = 10, interval: float = 0.02,
               message: str = "condition") -> object:
    """Return the first truthy value of `predicate()`, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout} s")
        time.sleep(interval)


def start_workers(*arg_lists: tuple[str, ...], env: dict[str, str] | None = None, timeout: float = 30) -> list:
    """Start one `runworker` per argument list at the same time (each loads Django in its own
    process) and wait until all are ready; if one fails, stop them all."""
    from taskqueue.testing import WorkerProcess

    workers = [WorkerProcess(tuple(args), env) for args in arg_lists]
    try:
        with ThreadPoolExecutor(len(workers)) as pool:
            list(pool.map(lambda worker: worker.start(timeout), workers))
    except BaseException:
        for worker in workers:
            worker.kill()
        raise
    return workers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live process (an unreaped zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


class RedisServer:
    """A throwaway redis-server on a free port; only this process is ever stopped."""

    def __init__(self, port: int | None = None, password: str | None = None, appendonly: bool = True,
                 extra: tuple[str, ...] = ()):
        self.port = port or free_port()
        self.password = password
        self.appendonly = appendonly
        self.extra = extra  # more redis-server options (--replicaof host port, say)
        self.dir = tempfile.mkdtemp(prefix="taskqueue-redis-")  # kept across stop()/start(): the AOF lives here
        self.process: subprocess.Popen | None = None
        self._remove_dir = weakref.finalize(self, shutil.rmtree, self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"redis://{f':{self.password}@' if self.password else ''}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The redis-server PID while it runs."""
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def start(self) -> RedisServer:
        """Start on `port` with `dir`, reloading the AOF a previous run left there."""
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
             "--loglevel", "warning", *(["--requirepass", self.password] if self.password else []), *self.extra],
            stdout=subprocess.DEVNULL)
        wait_until(self._answers, timeout=10, message=f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        import redis

        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"redis-server on port {self.port} exited with {self.process.returncode}")
        try:
            return redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.2,
                               socket_timeout=0.5).ping()
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        """Shut down gracefully (the AOF is flushed); the data dir stays."""
        if self.pid is not None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process would never act on SIGTERM
            _terminate(self.process)

    def restart(self) -> RedisServer:
        """Stop and start again on the same port and data dir."""
        self.stop()
        return self.start()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections open but nothing answers."""
        assert self.pid is not None, "redis-server is not running"
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze a paused server (SIGCONT)."""
        assert self.pid is not None, "redis-server is not running"
        os.kill(self.pid, signal.SIGCONT)

    def cleanup(self) -> None:
        """Stop and remove the data dir."""
        self.stop()
        self._remove_dir()

    close = cleanup


class SentinelServer:
    """A throwaway Redis Sentinel (redis-server --sentinel) on a free port, watching one master as
    `service` with a quorum of one and a two-second down-after; stopped by its PID."""

    def __init__(self, service: str, master_port: int):
        self.service, self.port = service, free_port()
        self.dir = tempfile.mkdtemp(prefix="taskqueue-sentinel-")
        self.config = os.path.join(self.dir, "sentinel.conf")
        with open(self.config, "w") as config:
            config.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                         f"sentinel monitor {service} 127.0.0.1 {master_port} 1\n"
                         f"sentinel down-after-milliseconds {service} 2000\n"
                         f"sentinel failover-timeout {service} 10000\n")
        self.process: subprocess.Popen | None = None
        self._remove_dir = weakref.finalize(self, shutil.rmtree, self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}/0"

    def _ask(self, *command: str):
        import redis

        with redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=2, decode_responses=True) as client:
            return client.execute_command("SENTINEL", *command)

    def master_port(self) -> int | None:
        """The port of the master this Sentinel names now."""
        import redis

        try:
            address = self._ask("GET-MASTER-ADDR-BY-NAME", self.service)
        except redis.ConnectionError:
            return None
        return int(address[1]) if address else None

    def replicas_known(self) -> int:
        return len(self._ask("REPLICAS", self.service) or [])

    def start(self) -> SentinelServer:
        self.process = subprocess.Popen(["redis-server", self.config, "--sentinel", "--loglevel", "warning"],
                                        stdout=subprocess.DEVNULL)
        wait_until(lambda: self.master_port() is not None, timeout=10, message=f"sentinel on port {self.port}")
        return self

    def failover(self) -> None:
        """A failover now (SENTINEL FAILOVER): the replica is promoted once it has caught up."""
        self._ask("FAILOVER", self.service)

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _terminate(self.process)
        self._remove_dir()


def _terminate(process: subprocess.Popen) -> None:
    """SIGTERM the process this helper started, SIGKILL it if it is not gone in 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _pg_bindir() -> str:
    """The directory holding both initdb and pg_ctl: PATH first, then the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("pg_ctl")
    candidates = [os.path.dirname(os.path.realpath(on_path))] if on_path else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0, reverse=True)
    for bindir in candidates:
        if all(os.access(os.path.join(bindir, name), os.X_OK) for name in ("initdb", "pg_ctl")):
            return bindir
    raise RuntimeError("no PostgreSQL initdb/pg_ctl found on PATH or in /usr/lib/postgresql/*/bin")


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free port, trust auth, listening on 127.0.0.1 only."""

    def __init__(self, port: int | None = None, timeout: float = 30):
        self.port = port or free_port()
        self.timeout = timeout
        self.bindir = _pg_bindir()
        self.dir = tempfile.mkdtemp(prefix="taskqueue-pg-")
        self.datadir = os.path.join(self.dir, "data")
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            shutil.chown(self.dir, "postgres", "postgres")
        self._remove_dir = weakref.finalize(self, shutil.rmtree, self.dir, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    @property
    def pid(self) -> int | None:
        """The postmaster PID from postmaster.pid, or None when it is not running."""
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as file:
                pid = int(file.readline())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def _run(self, *args: str) -> None:
        command = [os.path.join(self.bindir, args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        # cwd: the postgres user may not be able to enter the caller's working directory
        result = subprocess.run(command, cwd=self.dir, capture_output=True, text=True, timeout=self.timeout + 10)
        if result.returncode:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stdout}{result.stderr}")

    def start(self) -> PostgresServer:
        """Create the cluster on first use, then start it and wait until it accepts connections."""
        if not os.path.exists(self.datadir):
            self._run("initdb", "-D", self.datadir, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                      "--locale=C", "--no-sync")
            # fsync=off only risks data on an OS crash; clean shutdowns still checkpoint everything
            with open(os.path.join(self.datadir, "postgresql.conf"), "a") as conf:
                conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                           f"unix_socket_directories = '{self.dir}'\nfsync = off\nsynchronous_commit = off\n"
                           "full_page_writes = off\n")
        self._run("pg_ctl", "start", "-w", "-t", str(int(self.timeout)), "-D", self.datadir,
                  "-l", os.path.join(self.dir, "postgres.log"))
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop with pg_ctl (`smart`, `fast` or `immediate`) and wait until it is down."""
        if self.pid is not None:
            self._run("pg_ctl", "stop", "-w", "-t", str(int(self.timeout)), "-m", mode, "-D", self.datadir)

    def restart(self) -> PostgresServer:
        """Stop (fast) and start again with the same data."""
        self.stop()
        return self.start()

    def connect(self, dbname: str = "postgres"):
        """An autocommit psycopg connection to `dbname`."""
        import psycopg

        return psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=5)

    def create_database(self, name: str) -> str:
        """Create database `name` and return its URL."""
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def terminate_backends(self, dbname: str) -> int:
        """Kill every other session on `dbname`, wait until those are gone (clients may already have
        opened new ones), and return how many there were."""
        # In the select list, not the WHERE clause: there the planner may call it for any row, this one's too.
        query = ("SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = %s AND pid <> pg_backend_pid()")
        remaining = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)"
        with self.connect() as conn:
            killed = [pid for pid, _ in conn.execute(query, (dbname,)).fetchall()]
            wait_until(lambda: conn.execute(remaining, (killed,)).fetchone()[0] == 0, timeout=self.timeout,
                       message=f"terminated sessions on {dbname} gone")
        return len(killed)

    def cleanup(self) -> None:
        """Stop and remove the cluster's directory."""
        self.stop()
        self._remove_dir()

    close = cleanup


def report(scenario: str, **figures) -> None:
    """Print a scenario's figures; with TASKQUEUE_FAULT_REPORT=path, also append them there as a JSON
    line (docs/reliability.md's table comes from such a file)."""
    line = json.dumps({"scenario": scenario, **{k: round(v, 2) if isinstance(v, float) else v
                                                for k, v in figures.items()}})
    print(line)
    path = os.environ.get("TASKQUEUE_FAULT_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(line + "\n")


def held(broker, key: str) -> bool:
    """Whether the broker holds a message with this key: queued, delayed or in flight."""
    return key in broker.inspect([key]).bodies


def waits_in(broker, queue: str, key: str) -> bool:
    """Whether the message `key` waits in `queue`: found by key, or on a broker that cannot read by
    key (RabbitMQ), the only message ready in that queue (a test's own queue)."""
    if broker.reads_by_key:
        return key in broker.inspect([key]).bodies
    return broker.inspect().sizes.get(queue) == 1


@contextlib.contextmanager
def rabbitmq_vhost(url: str):
    """Make the URL's vhost on the local RabbitMQ (rabbitmqctl), yield the URL, delete the vhost.
    Without rabbitmqctl the vhost must exist already."""
    import amqp

    from taskqueue.brokers.amqpwire import parse_url

    params = parse_url(url)
    ctl = shutil.which("rabbitmqctl")
    made = False
    if ctl and params.virtual_host != "/":
        subprocess.run([ctl, "-q", "add_vhost", params.virtual_host], capture_output=True, timeout=60)
        subprocess.run([ctl, "-q", "set_permissions", "-p", params.virtual_host, params.userid, ".*", ".*", ".*"],
                       check=True, capture_output=True, timeout=60)
        made = True
    try:
        connection = amqp.Connection(host=params.host, userid=params.userid, password=params.password,
                                     virtual_host=params.virtual_host, connect_timeout=params.connect_timeout)
        connection.connect()
        connection.close()
    except Exception as exc:
        if os.environ.get("TASKQUEUE_REQUIRE_AMQP"):
            pytest.fail(f"RabbitMQ at {url} does not answer ({exc}) and TASKQUEUE_REQUIRE_AMQP is set")
        pytest.skip(f"RabbitMQ at {url} does not answer ({exc})")
    try:
        yield url
    finally:
        if made:
            subprocess.run([ctl, "-q", "delete_vhost", params.virtual_host], capture_output=True, timeout=60)



def _rabbitmq_server_script() -> str | None:
    """The release's own rabbitmq-server script: Debian's /usr/sbin wrapper would switch to the
    rabbitmq user and write the shared node's startup log, so the one behind it is preferred."""
    behind_wrapper = "/usr/lib/rabbitmq/bin/rabbitmq-server"
    return behind_wrapper if os.access(behind_wrapper, os.X_OK) else shutil.which("rabbitmq-server")


class RabbitServer:
    """A throwaway RabbitMQ node (`tq-<random>@localhost`) on free ports, with its own directory,
    config, cookie (HOME is its directory) and no plugins; stopped by its PID, never the machine's
    node. Its data (quorum queues, vhosts) stays across stop()/start() until cleanup()."""

    def __init__(self, timeout: float = 60):
        self.script = _rabbitmq_server_script()
        if self.script is None:
            pytest.skip("rabbitmq-server is not installed")
        self.timeout = timeout
        self.port, self.dist_port = free_port(), free_port()
        self.node = f"tq-{os.urandom(4).hex()}@localhost"
        self.dir = tempfile.mkdtemp(prefix="taskqueue-rabbit-")
        self._remove_dir = weakref.finalize(self, shutil.rmtree, self.dir, ignore_errors=True)
        files = {"rabbitmq.conf": f"listeners.tcp.default = 127.0.0.1:{self.port}\n",
                 "enabled_plugins": "[].\n", "rabbitmq-env.conf": "", ".erlang.cookie": os.urandom(16).hex()}
        for name, text in files.items():
            with open(os.path.join(self.dir, name), "w") as file:
                file.write(text)
        os.chmod(os.path.join(self.dir, ".erlang.cookie"), 0o400)  # Erlang refuses a cookie others can read
        self.env = {**os.environ, "HOME": self.dir, "RABBITMQ_NODENAME": self.node,
                    "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
                    "RABBITMQ_DIST_PORT": str(self.dist_port), "ERL_EPMD_ADDRESS": "127.0.0.1",
                    "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
                    "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
                    "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
                    "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq.conf"),
                    "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(self.dir, "advanced.config"),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
                    "RABBITMQ_CONF_ENV_FILE": os.path.join(self.dir, "rabbitmq-env.conf"),  # not /etc's
                    "RABBITMQ_PID_FILE": os.path.join(self.dir, "rabbitmq.pid")}
        self.process: subprocess.Popen | None = None
        self.started_in = 0.0  # seconds the last start() took

    def url(self, vhost: str = "/") -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    @property
    def pid(self) -> int | None:
        """The Erlang VM's PID while it runs (the script that started it is its parent)."""
        try:
            with open(self.env["RABBITMQ_PID_FILE"]) as file:
                pid = int(file.read().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def start(self) -> RabbitServer:
        """Start the node (its own process group) and wait until it takes AMQP connections."""
        began = time.monotonic()
        with open(os.path.join(self.dir, "console.log"), "ab") as console:
            self.process = subprocess.Popen([self.script], env=self.env, cwd=self.dir, stdin=subprocess.DEVNULL,
                                            stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(self._answers, timeout=self.timeout, interval=0.05, message=f"RabbitMQ node {self.node}")
        except BaseException:
            self.kill()
            raise
        self.started_in = time.monotonic() - began
        return self

    def _answers(self) -> bool:
        import amqp

        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"RabbitMQ node {self.node} exited with {self.process.returncode}: "
                                 f"see {self.dir}/console.log")
        try:
            connection = amqp.Connection(host=f"127.0.0.1:{self.port}", connect_timeout=0.5)
            connection.connect()
            connection.close()
            return True
        except (OSError, amqp.exceptions.AMQPError):
            return False

    def stop(self) -> None:
        """Shut down gracefully (the script passes SIGTERM on to the VM and waits for it)."""
        if self.process is not None and self.process.poll() is None:
            _terminate(self.process)
        self._wait_gone()

    def kill(self) -> None:
        """SIGKILL the node's whole process group at once, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
        self._wait_gone()

    def _wait_gone(self) -> None:
        wait_until(lambda: self.pid is None, timeout=15, message=f"RabbitMQ node {self.node} gone")

    def restart(self) -> RabbitServer:
        """Stop and start again with the same ports, name and data."""
        self.stop()
        return self.start()

    def ctl(self, *args: str) -> str:
        """rabbitmqctl on this node only (its cookie: HOME is the node's directory)."""
        ctl = os.path.join(os.path.dirname(os.path.realpath(self.script)), "rabbitmqctl")
        done = subprocess.run([ctl if os.access(ctl, os.X_OK) else "rabbitmqctl", "-q", "-n", self.node, *args],
                              env=self.env, cwd=self.dir, capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done.stdout

    def add_vhost(self, name: str) -> str:
        """A vhost of its own (guest may use it); returns its URL."""
        self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return self.url(name)

    def cleanup(self) -> None:
        """Stop and remove the node's directory."""
        self.stop()
        self._remove_dir()

    close = cleanup


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (10000 above it) is free too, so at most 55535."""
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterServer:
    """A throwaway Redis Cluster of `masters` masters (no replicas) on free loopback ports, each a
    redis-server stopped by its PID."""

    def __init__(self, masters: int = 3, password: str | None = None):
        self.password = password
        self.ports = [_free_cluster_port() for _ in range(masters)]
        self.dir = tempfile.mkdtemp(prefix="taskqueue-cluster-")
        self.processes: list[subprocess.Popen] = []
        self._remove_dir = weakref.finalize(self, shutil.rmtree, self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis+cluster://{auth}" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self, attempts: int = 3) -> RedisClusterServer:
        """Start the nodes and join them; on new ports if one could not bind (a port that was free
        a moment ago, taken by another test run since)."""
        for attempt in range(attempts):
            try:
                return self._start_once()
            except (AssertionError, subprocess.CalledProcessError):
                self._stop_nodes()
                if attempt == attempts - 1:
                    raise
                self.ports = [_free_cluster_port() for _ in self.ports]
            except BaseException:
                self._stop_nodes()
                raise
        return self

    def _start_once(self) -> RedisClusterServer:
        for port in self.ports:
            node_dir = os.path.join(self.dir, str(port))
            os.makedirs(node_dir, exist_ok=True)
            self.processes.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", node_dir,
                 "--cluster-enabled", "yes", "--cluster-config-file", os.path.join(node_dir, "nodes.conf"),
                 "--save", "", "--appendonly", "no", "--loglevel", "warning",
                 *(["--requirepass", self.password, "--masterauth", self.password] if self.password else [])],
                stdout=subprocess.DEVNULL))
        for port in self.ports:
            wait_until(lambda port=port: self._ask(port, "PING"), timeout=10, message=f"redis-server on {port}")
        subprocess.run(["redis-cli", *(["--no-auth-warning", "-a", self.password] if self.password else []),
                        "--cluster", "create", *[f"127.0.0.1:{port}" for port in self.ports],
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        for port in self.ports:
            wait_until(lambda port=port: b"cluster_state:ok" in (self._ask(port, "CLUSTER", "INFO") or b""),
                       timeout=30, message=f"cluster_state:ok on {port}")
        return self

    def _ask(self, port: int, *command: str):
        import redis

        for process in self.processes:
            if process.poll() is not None:
                raise AssertionError(f"a cluster redis-server exited with {process.returncode}")
        try:
            with redis.Redis(port=port, password=self.password, socket_connect_timeout=0.2, socket_timeout=2) as client:
                return client.execute_command(*command)
        except redis.ConnectionError:
            return None

    def node_of(self, key: str) -> int:
        """The port of the master that holds `key`'s slot."""
        return self.node_of_slot(self.slot_of(key))

    def slot_of(self, key: str) -> int:
        return self._ask(self.ports[0], "CLUSTER", "KEYSLOT", key)

    def move_slot(self, slot: int, to_port: int) -> None:
        """Migrate one hash slot, with its keys, to the master on `to_port` (a resharding)."""
        from_port = self.node_of_slot(slot)
        ids = {port: self._ask(port, "CLUSTER", "MYID").decode() for port in self.ports}
        self._ask(to_port, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[from_port])
        self._ask(from_port, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to_port])
        while keys := self._ask(from_port, "CLUSTER", "GETKEYSINSLOT", slot, 100):
            self._ask(from_port, "MIGRATE", "127.0.0.1", to_port, "", 0, 5000, "KEYS", *keys)
        for port in self.ports:
            self._ask(port, "CLUSTER", "SETSLOT", slot, "NODE", ids[to_port])

    def node_of_slot(self, slot: int) -> int:
        for start, end, (_, port, *_), *_ in self._ask(self.ports[0], "CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(port)
        raise AssertionError(f"slot {slot} is not served")

    def _stop_nodes(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                _terminate(process)
        self.processes = []

    def cleanup(self) -> None:
        self._stop_nodes()
        self._remove_dir()

    close = cleanup


def delete_amqp_topology(broker) -> None:
    """Delete the queues and exchanges a RabbitMQ broker of a test's own prefix declared, so a run
    does not pile up quorum queues (each holds file handles on the node)."""
    import amqp

    from taskqueue.brokers.amqptopology import DELAY_RUNGS

    params, topology = broker.params, broker.topology
    queues = [name for name in topology.declared() if name.startswith(f"{broker.prefix}.")]
    exchanges = [topology.due, topology.dead, topology.notices]
    if topology.known("ladder"):
        queues += [topology.rung(n) for n in range(DELAY_RUNGS)]
        exchanges += [topology.rung(n) for n in range(DELAY_RUNGS)]
    connection = amqp.Connection(host=params.host, userid=params.userid, password=params.password,
                                 virtual_host=params.virtual_host, connect_timeout=params.connect_timeout)
    connection.connect()
    try:
        channel = connection.channel()
        for name in queues:
            channel.queue_delete(name)
        for name in exchanges:
            channel.exchange_delete(name)
    finally:
        connection.close()
