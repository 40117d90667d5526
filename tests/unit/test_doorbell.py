"""The doorbell: wake-ups between processes of one machine without polling (SQLite's broker)."""

import os
import threading
import uuid

import pytest

from taskqueue.doorbell import Doorbell


def _bell() -> Doorbell:
    return Doorbell(f"/tmp/test-doorbell-{uuid.uuid4().hex}.sqlite3")


def test_a_ring_naming_a_queue_wakes_a_waiter_of_that_queue():
    bell = _bell()
    bound = threading.Event()
    woke = []

    def wait() -> None:
        bell.listen()  # this thread's own socket, bound before it looks (as the broker does)
        bound.set()
        woke.append(bell.wait_for({"default"}, 30))
        bell.close()

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert bound.wait(30)
    ringer = _bell()
    ringer.directory = bell.directory
    ringer.ring({"default"})
    waiter.join(30)
    assert woke == [True]
    assert not os.path.exists(bell.directory)  # the last socket closed took the directory with it


def test_a_ring_before_the_wait_is_not_lost_and_other_queues_do_not_count():
    bell = _bell()
    try:
        assert bell.listen()  # bound before looking, as the broker does
        bell.ring({"other"})
        assert bell.wait_for({"default"}, 0.05) is False  # rung for another queue: slept it out
        bell.ring({"default", "other"})
        assert bell.wait_for({"default"}, 30) is True  # already waiting in the socket: at once
    finally:
        bell.close()
    assert not os.path.exists(bell.directory)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")  # the child binds a socket and exits
def test_a_dead_process_socket_is_removed_by_the_next_ring():
    bell = _bell()
    pid = os.fork()
    if pid == 0:  # a consumer that dies without closing its socket
        bell.listen()
        os._exit(0)
    os.waitpid(pid, 0)
    left = [name for name in os.listdir(bell.directory) if name.startswith(f"{pid}-")]
    assert len(left) == 1
    bell.ring({"default"})
    assert not [name for name in os.listdir(bell.directory) if name.startswith(f"{pid}-")]
    os.rmdir(bell.directory)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")  # the child binds a socket and exits
def test_close_removes_the_socket_and_a_fork_binds_its_own():
    bell = _bell()
    assert bell.listen()
    mine = os.listdir(bell.directory)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if bell.listen() and len(os.listdir(bell.directory)) == 2 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    bell.ring({"x"})  # the child's socket is gone with it
    bell.close()
    assert mine and not os.path.exists(bell.directory)


def test_many_names_ring_in_several_datagrams_and_each_name_arrives():
    bell = _bell()
    names = {f"{n:032x}" for n in range(500)}  # about 16 KB of task ids: four datagrams
    try:
        assert bell.listen()
        bell.ring(names)
        assert bell.wait_for({f"{499:032x}"}, 30) is True  # the last name, in the last datagram
    finally:
        bell.close()


def test_a_process_that_exits_normally_leaves_no_socket_behind():
    import subprocess
    import sys

    name = f"/tmp/test-doorbell-{uuid.uuid4().hex}.sqlite3"
    code = f"from taskqueue.doorbell import Doorbell; assert Doorbell({name!r}).listen()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert not os.path.exists(Doorbell(name).directory)
