import pytest

from taskqueue.retries import backoff_countdown
from taskqueue.routing import route


def test_backoff_doubles_and_caps_without_jitter():
    assert [backoff_countdown(n, True, 600, False) for n in range(5)] == [1, 2, 4, 8, 16]
    assert backoff_countdown(20, True, 600, False) == 600
    assert backoff_countdown(2, 3, 600, False) == 12


def test_jitter_stays_within_the_countdown():
    assert all(0 <= backoff_countdown(3, True, 600, True) <= 8 for _ in range(50))


def test_routes_match_globs_before_the_task_queue():
    routes = {"payments.*": {"queue": "scoring"}, "mail.send": "mail"}
    assert route("payments.score", routes, None, "default") == "scoring"
    assert route("mail.send", routes, "other", "default") == "mail"
    assert route("x.y", routes, "tasks-own", "default") == "tasks-own"
    assert route("x.y", routes, None, "default") == "default"


def test_new_ids_are_random_version_4_uuids_as_text():
    import uuid

    from taskqueue.utils import new_id

    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_connection_the_amqp_server_closes_is_an_outage_not_a_task_s_oserror():
    """py-amqp reports the end of the server's stream as a plain OSError, raised in its transport."""
    import socket
    import threading

    import amqp

    from taskqueue.outages import is_outage

    def accept_then_close(server: socket.socket) -> None:
        peer, _ = server.accept()
        peer.recv(8)  # the protocol header, read so that closing is a clean end of stream
        peer.close()

    with socket.create_server(("127.0.0.1", 0)) as server:
        threading.Thread(target=accept_then_close, args=(server,), daemon=True).start()
        connection = amqp.Connection(host=f"127.0.0.1:{server.getsockname()[1]}", connect_timeout=2)
        with pytest.raises(OSError) as closed:
            connection.connect()
    assert type(closed.value) is OSError and is_outage(closed.value)
    assert not is_outage(OSError("a task's own")) and not is_outage(FileNotFoundError("a task's own"))
