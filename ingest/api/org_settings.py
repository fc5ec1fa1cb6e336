"""``/api/v1/settings``: the calling org's settings."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from cartrecovery.org_settings import OrgSettingsPatch, get_settings, update_settings

from ..auth import require_key
from ..openapi import request_body
from ..runtime import runtime

bp = Blueprint("org_settings", __name__, url_prefix="/api/v1/settings")


@bp.get("")
@require_key("read")
def read_settings():
    """Read every setting of the org, defaults filled in."""
    with runtime().db.tenant(g.org_id) as conn:
        return jsonify(get_settings(conn, g.org_id))


@bp.patch("")
@require_key("admin")
@request_body(OrgSettingsPatch)
def change_settings(body: OrgSettingsPatch):
    """Change some settings (admin key); null resets one to its default.

    Unknown keys are refused; the answer is the full settings after the change.
    """
    with runtime().db.tenant(g.org_id) as conn:
        return jsonify(update_settings(conn, g.org_id, body))
