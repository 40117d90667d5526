"""Bad messages land in the dead-letter store with the reason; the worker keeps processing."""

from taskqueue.brokers import Outgoing, get_broker
from taskqueue.models import DeadLetter
from tests.factories import SignedBodyFactory
from tests.helpers import held, wait_until
from tests.tasks import add


def test_bad_messages_are_dead_lettered_and_the_worker_goes_on(worker, admin_client):
    broker = get_broker()
    good = SignedBodyFactory(message__id="unknown-1", message__task="no.such.task")
    broker.publish([Outgoing("default", "unknown-1", good)])
    broker.publish([Outgoing("default", "malformed-1", SignedBodyFactory(payload=b'{"id": "malformed-1", "args": 5'))])
    broker.publish([Outgoing("default", "unsigned-1", b'{"v": 1, "id": "unsigned-1", "task": "tests.tasks.add"}')])
    forged = SignedBodyFactory(message__id="forged-1", message__task="tests.tasks.add", key=b"not-our-key")
    broker.publish([Outgoing("default", "forged-1", forged)])

    assert add.delay(20, 22).get(timeout=10) == 42
    wait_until(lambda: DeadLetter.objects.count() == 4, timeout=10, message="four dead letters")
    reasons = dict(DeadLetter.objects.values_list("message_id", "reason"))
    assert "no task named 'no.such.task'" in reasons["unknown-1"]
    assert "malformed" in reasons["malformed-1"]
    assert "unsigned" in reasons["unsigned-1"]
    assert "forged" in reasons["forged-1"]
    # acked (with the rest of their batch): not redelivered forever
    wait_until(lambda: not any(held(broker, key) for key in reasons), timeout=5, message="acked")

    page = admin_client.get("/admin/taskqueue/deadletter/")
    assert page.status_code == 200 and b"forged message" in page.content
