"""Per-org settings: what ``GET/PATCH /api/v1/settings`` read and change.

Two settings are columns of ``app.orgs`` because the scheduler's cross-org scan filters on
them (``abandonment_timeout_seconds``, ``attribution_window_seconds``); every other setting
lives in the ``app.orgs.settings`` jsonb under its own key.

Adding a setting: add an optional field to :class:`OrgSettingsPatch` and its default to
:data:`DEFAULTS`. Nothing else: fields that are not columns are merged into the jsonb
(top-level keys; a nested object is replaced as a whole), and ``get_settings`` returns it with
its default filled in. In a PATCH, ``null`` resets a setting to its default.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

# Real stores use 60 s .. 30 days; anything from 1 s is accepted so tests and demos can watch
# a cart go abandoned without waiting.
MIN_TIMEOUT_SECONDS = 1
MAX_TIMEOUT_SECONDS = 30 * 24 * 3600
MAX_ATTRIBUTION_WINDOW_SECONDS = 90 * 24 * 3600

# Settings stored as columns of app.orgs; their defaults are also the columns' SQL defaults.
COLUMNS = ("abandonment_timeout_seconds", "attribution_window_seconds")

DEFAULTS: dict[str, Any] = {
    "abandonment_timeout_seconds": 1800,
    "attribution_window_seconds": 5 * 24 * 3600,
}


class OrgSettingsPatch(BaseModel):
    """The body of ``PATCH /api/v1/settings``: only the settings being changed."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    abandonment_timeout_seconds: int | None = Field(
        default=None,
        ge=MIN_TIMEOUT_SECONDS,
        le=MAX_TIMEOUT_SECONDS,
        description="Idle seconds after which an active cart counts as abandoned "
        "(default 1800; typical 60..2592000, values from 1 are accepted for tests and demos).",
    )
    attribution_window_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ATTRIBUTION_WINDOW_SECONDS,
        description="An order within this many seconds of a click on a recovery message "
        "counts as recovered by it (default 432000 = 5 days).",
    )


def get_settings(conn: psycopg.Connection, org_id: UUID | str) -> dict:
    """All settings of ``org_id``: defaults, overridden by what is stored.

    Raises LookupError when the org does not exist (or is not visible in this transaction).
    """
    row = conn.execute(
        "SELECT abandonment_timeout_seconds, attribution_window_seconds, settings "
        "FROM app.orgs WHERE org_id = %s",
        (org_id,),
    ).fetchone()
    if row is None:
        raise LookupError(f"org {org_id} not found")
    result = {k: v for k, v in DEFAULTS.items() if k not in COLUMNS}
    result.update(row["settings"] or {})
    result.update({column: row[column] for column in COLUMNS})
    return result


def update_settings(
    conn: psycopg.Connection, org_id: UUID | str, changes: dict | OrgSettingsPatch
) -> dict:
    """Apply ``changes`` (validated by :class:`OrgSettingsPatch`) and return all settings.

    Only keys present in ``changes`` are touched; a ``None`` value resets that setting to its
    default. Raises ``pydantic.ValidationError`` for invalid changes (nothing is written) and
    LookupError when the org does not exist.
    """
    patch = (
        changes
        if isinstance(changes, OrgSettingsPatch)
        else OrgSettingsPatch.model_validate(changes)
    )
    values = patch.model_dump(mode="json", exclude_unset=True)
    column_sets = [
        sql.SQL("{} = {}").format(
            sql.Identifier(name),
            sql.SQL("DEFAULT") if values[name] is None else sql.Literal(values[name]),
        )
        for name in COLUMNS
        if name in values
    ]
    removed = [k for k, v in values.items() if k not in COLUMNS and v is None]
    merged = {k: v for k, v in values.items() if k not in COLUMNS and v is not None}
    statement = sql.SQL(
        "UPDATE app.orgs SET {} WHERE org_id = %s RETURNING org_id"
    ).format(
        sql.SQL(", ").join(
            [*column_sets, sql.SQL("settings = (settings - %s::text[]) || %s::jsonb")]
        )
    )
    updated = conn.execute(statement, (removed, Jsonb(merged), org_id)).fetchone()
    if updated is None:
        raise LookupError(f"org {org_id} not found")
    return get_settings(conn, org_id)
