"""Containment: whatever goes wrong with one message stays with that message. A message that
cannot be decoded, or whose follow-ups cannot be sent, is kept as a DeadLetter with the reason
(its text escaped: a body may hold NUL bytes or invalid UTF-8); the batch goes on. Outages are
not contained here: they leave, so the message goes back and runs when the servers return.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .. import registry, serialization, store
from ..brokers import Delivery
from ..conf import get_settings
from ..exceptions import DeadLettered, DecodeError, NotRegistered
from ..message import Message, decode, peek_id
from ..models import DeadLetter
from ..outages import is_outage
from . import continuation

logger = logging.getLogger("taskqueue.worker")


def decode_or_dead_letter(delivery: Delivery, hostname: str) -> Message | None:
    """The verified message, or None after storing it as a DeadLetter with the reason."""
    message = None
    if delivery.redeliveries > get_settings().MAX_REDELIVERIES + 2:
        # Failing it as WorkerLostError (in `run`) did not finish either: decoding it may be what
        # kills the worker, so do not even try.
        reason = f"handed out {delivery.redeliveries} times and never finished; not decoded again"
    else:
        try:
            message = decode(delivery.body, get_settings().signing_key)
            registry.get_task(message.task)
            return message
        except (DecodeError, NotRegistered) as exc:
            reason = str(exc)
        except Exception as exc:  # a body built to break the decoder must not break the consumer
            reason = f"the message could not be decoded: {exc!r}"
    dead_letter(delivery, reason, hostname, message=message)
    return None


def dead_letter(delivery: Delivery, reason: str, hostname: str, task_name: str = "",
                message: Message | None = None) -> None:
    """Keep a message that cannot run, with the reason, for an operator; with `message` (verified:
    an unverified body could name anyone's task), fail its result and what was to follow it too.
    `task_name`: when there is no verified message to read it from."""
    task_name = message.task if message is not None else task_name
    logger.error("Rejected message %s from queue %r: %s", delivery.key, delivery.queue, reason)
    escape = serialization.escape_text
    try:
        message_id = peek_id(delivery.body) or delivery.key
    except Exception:
        message_id = delivery.key
    body = escape(delivery.body.decode("utf-8", errors="backslashreplace"))
    try:
        DeadLetter.objects.create(message_id=escape(message_id)[:255], task_name=escape(task_name)[:255],
                                  queue=escape(delivery.queue)[:255], reason=escape(reason),
                                  worker=hostname[:255], body=body)
    except Exception as exc:
        if is_outage(exc):
            raise
        # Kept nowhere else: dropping it (with its body in the log) is the one way out of a loop.
        logger.critical("Could not keep message %s as a dead letter (%r); dropping it. Body: %.2000s",
                        delivery.key, exc, body)
    if message is not None:
        _fail_its_result(message, task_name, reason)


def _fail_its_result(message: Message, task_name: str, reason: str) -> None:
    """Its caller's get() must raise rather than wait for ever: FAILURE, unless it finished (the
    follow-ups of a finished task failed); a chord member counts as failed, so its chord fails, and
    its chain's later steps fail."""
    task_id = message.id
    if len(task_id) > 255:
        return
    try:
        if store.fail_dead_lettered(task_id, task_name[:255], f"dead-lettered: {reason}"):
            continuation.dead_lettered(task_id, message, DeadLettered(f"dead-lettered: {reason}"))
    except Exception as exc:
        if is_outage(exc):
            raise
        logger.exception("Could not store the failure of dead-lettered task %s", task_id)


def contained(action: Callable[[], object], delivery: Delivery, message: Message, hostname: str,
              what: str) -> None:
    """Run `action` (what follows a finished task); if it fails for a reason other than an outage,
    keep the message as a dead letter saying that `what` failed, and go on."""
    try:
        action()
    except Exception as exc:
        if is_outage(exc):
            raise
        logger.exception("%s of %s[%s] failed", what, message.task, message.id)
        dead_letter(delivery, f"{what} failed: {exc!r}", hostname, message=message)
