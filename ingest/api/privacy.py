"""``/api/v1/privacy``: GDPR erasure and data export of one subject, and the export bundles
prepared for platform privacy requests (``/data-requests``); admin key.

The erasure runs in one tenant transaction (all or nothing); the providers that keep a
contact store (SendGrid Marketing Contacts) are asked to delete the contact after the commit,
and the outcome is added to the erasure record and the answer.
"""

from __future__ import annotations

import re
from datetime import datetime
from uuid import UUID

from flask import Blueprint, g, jsonify
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cartrecovery.privacy import data_requests, erasure, provider_contacts
from cartrecovery.privacy.export import export_subject
from cartrecovery.privacy.subject import resolve_subject

from ..auth import require_key
from ..errors import ApiError
from ..openapi import request_body, request_query
from ..runtime import runtime

bp = Blueprint("privacy", __name__, url_prefix="/api/v1/privacy")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Subject(BaseModel):
    """The data subject: an email, a phone, or both."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value and not _EMAIL.match(value):
            raise ValueError("not an email address")
        return value or None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value and len(re.sub(r"\D", "", value)) < 6:
            raise ValueError("not a phone number")
        return value or None

    @model_validator(mode="after")
    def _one(self):
        if not self.email and not self.phone:
            raise ValueError("email or phone is required")
        return self


class ErasureRequest(Subject):
    reason: str = Field(default="api request", max_length=200)


def _actor() -> str:
    return g.principal.actor


@bp.post("/erasure")
@require_key("admin")
@request_body(ErasureRequest)
def erase(body: ErasureRequest):
    """Erase a subject's personal data everywhere (admin key).

    Operational rows are anonymised (counts survive), raw payloads scrubbed, suppressions
    kept as salted hashes, the contact removed from SendGrid where configured. Answers
    ``{erasure_id, subject_hash, counts: {table: rows}, providers}``.
    """
    rt = runtime()
    with rt.db.tenant(g.org_id) as conn:
        # Both the given address and the ones found through it go to the providers.
        subject = resolve_subject(conn, g.org_id, email=body.email, phone=body.phone)
        result = erasure.erase_subject(
            conn,
            g.org_id,
            email=body.email,
            phone=body.phone,
            reason=body.reason,
            requested_by=_actor(),
        )
    providers = provider_contacts.remove_from_providers(
        rt.settings, emails=subject.emails, phones=subject.phones
    )
    with rt.db.tenant(g.org_id) as conn:
        conn.execute(
            "UPDATE app.erasure_requests SET providers = %s WHERE org_id = %s AND erasure_id = %s",
            (Jsonb(providers), g.org_id, result["erasure_id"]),
        )
    return jsonify({**result, "providers": providers})


@bp.get("/export")
@require_key("admin")
@request_query(Subject)
def export(query: Subject):
    """Everything held about a subject, as JSON (admin key): customers, carts with items,
    orders, messages, message events, consents, suppressions, raw events."""
    with runtime().db.tenant(g.org_id) as conn:
        return jsonify(export_subject(conn, g.org_id, email=query.email, phone=query.phone))


@bp.get("/data-requests")
@require_key("admin")
def list_data_requests():
    """Export bundles prepared for platform data requests, newest first (without bundles)."""
    with runtime().db.tenant(g.org_id) as conn:
        rows = data_requests.list_data_requests(conn, g.org_id)
    return jsonify({"data_requests": [_jsonable(r) for r in rows]})


@bp.get("/data-requests/<id>")
@require_key("admin")
def get_data_request(id: str):
    """One data request with its export bundle, to hand over to the data subject."""
    try:
        request_id = UUID(id)
    except ValueError:
        raise ApiError(404, "not_found", "data request not found") from None
    with runtime().db.tenant(g.org_id) as conn:
        row = data_requests.get_data_request(conn, g.org_id, request_id)
    if row is None:
        raise ApiError(404, "not_found", "data request not found")
    return jsonify(_jsonable(row))


def _jsonable(row: dict) -> dict:
    return {
        k: (str(v) if isinstance(v, UUID) else v.isoformat() if isinstance(v, datetime) else v)
        for k, v in row.items()
    }
