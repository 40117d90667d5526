"""Task state names and the sets Celery users expect (READY_STATES and friends), as Celery has them."""

from __future__ import annotations

PENDING = "PENDING"
RECEIVED = "RECEIVED"
STARTED = "STARTED"
RETRY = "RETRY"
FAILURE = "FAILURE"
SUCCESS = "SUCCESS"
REVOKED = "REVOKED"
REJECTED = "REJECTED"  # Celery's name for a message a worker refused; kept so the sets match Celery's
IGNORED = "IGNORED"

READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, REJECTED, RETRY})
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})
ALL_STATES = frozenset({PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED})

# Lower index, higher precedence; None stands for any custom state (e.g. PROGRESS).
PRECEDENCE = [SUCCESS, FAILURE, None, REVOKED, STARTED, RECEIVED, REJECTED, RETRY, PENDING]
_PRECEDENCE = {name: index for index, name in enumerate(PRECEDENCE)}


def precedence(state: str) -> int:
    """The precedence index of a state (lower is higher); a custom state ranks as None does."""
    return _PRECEDENCE.get(state, _PRECEDENCE[None])


class state(str):  # noqa: N801 - Celery's name
    """A state name that compares by precedence: `state(PENDING) < state(SUCCESS)`."""

    def __gt__(self, other: str) -> bool:
        return precedence(self) < precedence(other)

    def __ge__(self, other: str) -> bool:
        return precedence(self) <= precedence(other)

    def __lt__(self, other: str) -> bool:
        return precedence(self) > precedence(other)

    def __le__(self, other: str) -> bool:
        return precedence(self) >= precedence(other)
