"""Database rows as JSON-ready dicts: the one conversion every API answer uses."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID


def json_ready(row: dict | None) -> dict | None:
    """``row`` with datetimes/dates as ISO 8601 text, UUIDs as text and numerics as floats
    (money leaves the API as JSON numbers); None stays None."""
    if row is None:
        return None
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, UUID):
            value = str(value)
        elif isinstance(value, Decimal):
            value = float(value)
        out[key] = value
    return out
