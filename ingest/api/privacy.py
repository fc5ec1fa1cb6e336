"""``/api/v1/privacy``: GDPR erasure and data export of one subject (admin key).

The erasure runs in one tenant transaction (all or nothing); the providers that keep a
contact store (SendGrid Marketing Contacts) are asked to delete the contact after the commit,
and the outcome is added to the erasure record and the answer.
"""

from __future__ import annotations

import re

from flask import Blueprint, g, jsonify
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cartrecovery import privacy

from ..auth import require_key
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
        subject = privacy.resolve_subject(conn, g.org_id, email=body.email, phone=body.phone)
        result = privacy.erase_subject(
            conn,
            g.org_id,
            email=body.email,
            phone=body.phone,
            reason=body.reason,
            requested_by=_actor(),
        )
    providers = privacy.remove_from_providers(
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
        return jsonify(privacy.export_subject(conn, g.org_id, email=query.email, phone=query.phone))
