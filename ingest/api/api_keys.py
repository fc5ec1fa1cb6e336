"""``/api/v1/api-keys``: the org's secret API keys (admin): list, create with an optional
expiry, rotate with a grace period, revoke. A key is shown in clear once, when made.
(Publishable keys for browsers have their own endpoints, ``ingest/snippet.py``.)"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from uuid import UUID

from flask import Blueprint, g, jsonify
from pydantic import BaseModel, ConfigDict, Field

from cartrecovery import tenancy

from ..auth import require_key
from ..errors import ApiError
from ..openapi import request_body
from ..runtime import runtime

bp = Blueprint("api_keys", __name__, url_prefix="/api/v1/api-keys")

MAX_SECONDS = 5 * 365 * 24 * 3600


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    role: Literal["admin", "write", "read"]
    name: str | None = Field(default=None, max_length=200)
    expires_in_seconds: int | None = Field(
        default=None,
        ge=60,
        le=MAX_SECONDS,
        description="The key stops working this long from now (default: never).",
    )


class ApiKeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(
        default=3600,
        ge=0,
        le=30 * 24 * 3600,
        description="How long the old key keeps working (0: it stops now).",
    )
    expires_in_seconds: int | None = Field(
        default=None, ge=60, le=MAX_SECONDS, description="Expiry of the new key (default: never)."
    )


def key_json(row: dict, key: str | None = None) -> dict:
    out = {
        "key_id": str(row["key_id"]),
        "prefix": row["prefix"],
        "role": row["role"],
        "name": row["name"],
        "created_at": row["created_at"].isoformat(),
        "expires_at": row["expires_at"].isoformat() if row.get("expires_at") else None,
        "revoked_at": row["revoked_at"].isoformat() if row.get("revoked_at") else None,
    }
    if key is not None:
        out["api_key"] = key
    return out


def _seconds(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


@bp.get("")
@require_key("admin")
def list_keys():
    """The org's API keys (never the keys themselves: their prefix), newest first."""
    with runtime().db.tenant(g.org_id) as conn:
        rows = tenancy.list_api_keys(conn, g.org_id)
    return jsonify({"api_keys": [key_json(r) for r in rows]})


@bp.post("")
@require_key("admin")
@request_body(ApiKeyCreate, status=201)
def create(body: ApiKeyCreate):
    """Create an API key (admin) → 201 with the key in clear, shown this once."""
    with runtime().db.tenant(g.org_id) as conn:
        key, row = tenancy.insert_api_key(
            conn, g.org_id, body.role, body.name, _seconds(body.expires_in_seconds)
        )
    return jsonify(key_json(row, key)), 201


@bp.post("/<key_id>/rotate")
@require_key("admin")
@request_body(ApiKeyRotate, status=201)
def rotate(body: ApiKeyRotate, key_id: str):
    """Replace a live key by a new one with the same role and name → 201 with the new key in
    clear; the old one keeps working for ``grace_seconds``, then expires."""
    found = None
    with runtime().db.tenant(g.org_id) as conn:
        if (parsed := _uuid(key_id)) is not None:
            found = tenancy.rotate_api_key(
                conn,
                g.org_id,
                parsed,
                timedelta(seconds=body.grace_seconds),
                _seconds(body.expires_in_seconds),
            )
    if found is None:
        raise ApiError(404, "not_found", "no live API key with this id")
    key, row = found
    return jsonify({**key_json(row, key), "replaces": key_id}), 201


@bp.delete("/<key_id>")
@require_key("admin")
def revoke(key_id: str):
    """Revoke a key at once."""
    revoked = False
    with runtime().db.tenant(g.org_id) as conn:
        if (parsed := _uuid(key_id)) is not None:
            revoked = tenancy.revoke_api_key(conn, g.org_id, parsed)
    if not revoked:
        raise ApiError(404, "not_found", "no live API key with this id")
    return jsonify({"key_id": key_id, "status": "revoked"})


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None
