"""The FROM item of a bulk upsert, shared by the customer and cart statements."""

from __future__ import annotations

from collections.abc import Sequence


def rows_from(columns: Sequence[tuple[str, str]], many: bool = True) -> str:
    """The FROM item ``t`` of an upsert: one binary array parameter per column (unnest), or,
    for a single row, one binary scalar parameter per column (VALUES: cheaper to send).
    Binary (%b) because psycopg's text format escapes every array element in Python."""
    names = ", ".join(name for name, _ in columns)
    if many:
        return f"unnest({', '.join(f'%b::{kind}[]' for _, kind in columns)}) AS t({names})"
    return f"(VALUES ({', '.join(f'%b::{kind}' for _, kind in columns)})) AS t({names})"
