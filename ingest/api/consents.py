"""``/api/v1/consents``: record a consent or its withdrawal in the append-only ledger.

The gate reads the latest entry for an address on a channel at send time: SMS needs a
'granted' entry, email under the ``opt_in`` policy needs one (or accepts_marketing), and a
'withdrawn' entry stops email even under ``soft_opt_in``.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from flask import Blueprint, g, jsonify
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from cartrecovery import consents

from ..auth import require_key
from ..errors import ApiError
from ..openapi import request_body, request_query
from ..runtime import runtime

bp = Blueprint("consents", __name__, url_prefix="/api/v1/consents")


class ConsentCreate(BaseModel):
    """The body of ``POST /api/v1/consents``."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    channel: Literal["email", "sms", "push"]
    address: str = Field(
        min_length=1,
        max_length=1000,
        description="Email address, phone number in international form (+15551234567), or "
        "push subscription id; stored lower-cased / E.164.",
    )
    status: Literal["granted", "withdrawn"]
    source: str = Field(
        min_length=1,
        max_length=100,
        description="Where it was given: checkout, snippet, api, sms_keyword, admin, ...",
    )
    wording: str | None = Field(
        default=None, max_length=10_000, description="The consent text shown to the person."
    )
    ip: str | None = Field(default=None, max_length=64, description="The person's IP address.")
    user_agent: str | None = Field(default=None, max_length=1000)

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise PydanticCustomError("ip_address", "ip is not an IP address") from None
        return value or None


class ConsentQuery(BaseModel):
    channel: Literal["email", "sms", "push"] | None = None
    address: str | None = None


def _json(row: dict) -> dict:
    return {
        **row,
        "consent_id": str(row["consent_id"]),
        "recorded_at": row["recorded_at"].isoformat(),
    }


@bp.post("")
@require_key("write")
@request_body(ConsentCreate, status=201)
def record(body: ConsentCreate):
    """Record a consent (granted) or its withdrawal for one address on one channel → 201."""
    try:
        address = consents.normalize_address(body.channel, body.address)
    except consents.InvalidAddress as exc:
        raise ApiError(
            400, "validation_error", str(exc), {"errors": [{"loc": ["address"], "msg": str(exc)}]}
        ) from None
    # The caller is usually the store's server, so its own User-Agent/IP are not the
    # person's: only what the body states is recorded.
    with runtime().db.tenant(g.org_id) as conn:
        consent_id = consents.record_consent(
            conn,
            g.org_id,
            channel=body.channel,
            address=address,
            status=body.status,
            source=body.source,
            wording=body.wording,
            ip=body.ip,
            user_agent=body.user_agent,
        )
        row = conn.execute(
            "SELECT consent_id, channel, address, status, source, wording, host(ip) AS ip, "
            "user_agent, recorded_at FROM app.consents WHERE org_id = %s AND consent_id = %s",
            (g.org_id, consent_id),
        ).fetchone()
    return jsonify(_json(row)), 201


@bp.get("")
@require_key("read")
@request_query(ConsentQuery)
def list_consents(query: ConsentQuery):
    """Ledger entries, newest first, optionally for one channel and address."""
    if query.address and not query.channel:
        raise ApiError(400, "validation_error", "address needs channel")
    with runtime().db.tenant(g.org_id) as conn:
        rows = consents.history(conn, g.org_id, query.channel, query.address)
    return jsonify({"consents": [_json(r) for r in rows]})
