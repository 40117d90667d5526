"""Small helpers with no taskqueue dependencies."""

from __future__ import annotations

import os
import uuid


def new_id() -> str:
    """A random (version 4) UUID as text, as str(uuid.uuid4()) gives, without building a UUID
    object: a third of the cost, and every delay() makes one."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}  # RFC 4122 variant bits


def derived_id(parent_id: str, purpose: str) -> str:
    """A stable id for a follow-up message, so re-sending it after a crash is idempotent."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"taskqueue:{parent_id}:{purpose}"))
