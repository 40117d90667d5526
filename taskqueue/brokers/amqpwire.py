"""RabbitMQ connections for the broker in `amqp.py`: the URL, opening and closing a connection, and
the publishing connection that waits for RabbitMQ's confirms."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import amqp
from amqp import spec

CONFIRM_TIMEOUT = 10.0  # seconds a publish waits for RabbitMQ to confirm it has the messages


class PublishRefused(amqp.exceptions.ConnectionError):
    """RabbitMQ did not take a message (nack, or no queue to route it to): the send fails."""


@dataclass
class Params:
    host: str
    userid: str
    password: str
    virtual_host: str
    ssl: bool
    connect_timeout: float = 5.0


def parse_url(url: str) -> Params:
    """`amqp://user:password@host:port/vhost` (Celery's `pyamqp://` too; `amqps://` for TLS); the
    vhost is URL-quoted (`%2F` is "/", as is an empty path)."""
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    query = parse_qs(parts.query)
    return Params(host=f"{parts.hostname or '127.0.0.1'}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}",
                  userid=unquote(parts.username or "guest"), password=unquote(parts.password or "guest"),
                  virtual_host=vhost, ssl=parts.scheme == "amqps",
                  connect_timeout=float(query.get("connect_timeout", ["5"])[0]))


def connect(params: Params) -> amqp.Connection:
    # heartbeat=0: a prefork child runs a task without reading its socket, and a missed heartbeat
    # would make RabbitMQ close the connection and hand the running task out again. A dead peer
    # is found by TCP keepalive (py-amqp's default socket settings) or when its socket closes.
    connection = amqp.Connection(host=params.host, userid=params.userid, password=params.password,
                                 virtual_host=params.virtual_host, ssl=params.ssl, heartbeat=0,
                                 connect_timeout=params.connect_timeout)
    connection.connect()
    return connection


def close_quietly(connection: amqp.Connection) -> None:
    try:
        connection.close()
    except Exception:  # already broken: nothing left to close properly
        try:
            connection.collect()
        except Exception:
            pass


class Publisher:
    """One thread's publishing connection, with publisher confirms."""

    def __init__(self, params: Params):
        self.connection = connect(params)
        self.channel = self.connection.channel()
        self.channel.confirm_select()
        self.sent = 0
        self.confirmed = 0
        self.refused: list[str] = []
        self.channel.events["basic_ack"].add(self._acked)
        self.channel.events["basic_nack"].add(self._nacked)
        self.channel.events["basic_return"].add(self._returned)

    def _acked(self, delivery_tag: int, multiple: bool) -> None:
        self.confirmed = max(self.confirmed, delivery_tag)

    def _nacked(self, delivery_tag: int, multiple: bool) -> None:
        self.refused.append(f"RabbitMQ refused message {delivery_tag}")
        self.confirmed = max(self.confirmed, delivery_tag)

    def _returned(self, exc: Exception, exchange: str, routing_key: str, message: amqp.Message) -> None:
        self.refused.append(f"no queue for {routing_key!r}")

    def send(self, message: amqp.Message, exchange: str, routing_key: str, mandatory: bool = True) -> None:
        """Mandatory: a message no queue takes fails the wait for confirms."""
        self.channel.basic_publish(message, exchange=exchange, routing_key=routing_key, mandatory=mandatory)
        self.sent += 1

    def wait_for_confirms(self) -> None:
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while self.confirmed < self.sent:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"RabbitMQ confirmed {self.confirmed} of {self.sent} messages in time")
            self.channel.wait([spec.Basic.Ack, spec.Basic.Nack], timeout=left)
        if self.refused:
            refused, self.refused = self.refused, []
            raise PublishRefused("; ".join(refused))

    def close(self) -> None:
        close_quietly(self.connection)
