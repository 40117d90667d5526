"""Small helpers with no taskqueue dependencies."""

from __future__ import annotations

import uuid


def new_id() -> str:
    return str(uuid.uuid4())


def derived_id(parent_id: str, purpose: str) -> str:
    """A stable id for a follow-up message, so re-sending it after a crash is idempotent."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"taskqueue:{parent_id}:{purpose}"))
