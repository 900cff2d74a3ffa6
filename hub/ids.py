"""Identifiers and timestamps shared by every module."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def new_id() -> str:
    """A 32-char hex id: opaque, URL-safe, sortable enough for logs."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """Now in UTC, truncated to milliseconds (what BSON dates store)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def iso(value: datetime | None) -> str | None:
    """ISO-8601 with an explicit UTC offset; naive values from the driver are UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()
