"""``/u/<token>``: the unsubscribe link every recovery email carries.

GET shows a confirmation page and changes nothing (mail scanners fetch links; an unsubscribe
must be the recipient's own act); POST suppresses the address for that channel in the org,
records the withdrawal in the consent ledger and the event on the message.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, request
from psycopg.types.json import Jsonb

from cartrecovery import suppressions
from cartrecovery.consents import InvalidAddress, normalize_address, record_consent
from delivery.restore_links import UNSUBSCRIBE_SALT, InvalidToken, read_token

from .restore import MAX_TOKEN_LENGTH, _refuse, page
from .runtime import runtime

bp = Blueprint("unsubscribe", __name__)


def _message(token: str):
    """The outbox row the token names, or a refusal response."""
    if len(token) > MAX_TOKEN_LENGTH:
        return None, _refuse(
            400, "invalid_link", "This link is not valid", "This link is damaged or incomplete."
        )
    try:
        link = read_token(runtime().settings.secret_key, token, salt=UNSUBSCRIBE_SALT)
    except InvalidToken:  # expired ones too: an unsubscribe link lives two years
        return None, _refuse(
            400,
            "invalid_link",
            "This link is not valid",
            "This link is damaged, incomplete or too old.",
        )
    with runtime().db.tenant(link.org_id) as conn:
        row = conn.execute(
            "SELECT org_id, message_id, cart_id, channel, recipient FROM app.outbox "
            "WHERE org_id = %s AND message_id = %s",
            (link.org_id, link.message_id),
        ).fetchone()
    if row is None or not row["recipient"]:
        return None, _refuse(
            410, "message_unavailable", "Nothing to unsubscribe", "We no longer hold this address."
        )
    return row, None


@bp.get("/u/<path:token>")
def confirm(token: str):
    message, refusal = _message(token)
    if refusal:
        return refusal
    form = (
        '<form method="post"><button type="submit" style="font-size:16px;padding:12px '
        '20px;border:0;border-radius:6px;background:#111827;color:#fff">Unsubscribe'
        "</button></form>"
    )
    return page("Unsubscribe", "Stop receiving cart reminders at this address?", form=form)


@bp.post("/u/<path:token>")
def unsubscribe(token: str):
    message, refusal = _message(token)
    if refusal:
        return refusal
    org_id, channel = message["org_id"], message["channel"]
    try:
        address = normalize_address(channel, message["recipient"])
    except InvalidAddress:
        address = message["recipient"]
    now = datetime.now(UTC)
    with runtime().db.tenant(org_id) as conn:
        suppressions.suppress(conn, org_id, channel, address, "unsubscribe")
        record_consent(
            conn,
            org_id,
            channel=channel,
            address=address,
            status="withdrawn",
            source="unsubscribe_link",
            ip=request.remote_addr,
            user_agent=request.headers.get("User-Agent"),
        )
        conn.execute(
            "INSERT INTO app.message_events (org_id, event_key, message_id, cart_id, event_type,"
            " occurred_at, payload) VALUES (%s, %s, %s, %s, 'unsubscribe', %s, %s) "
            "ON CONFLICT (org_id, event_key) DO NOTHING",
            (
                org_id,
                f"unsubscribe:{message['message_id']}",
                message["message_id"],
                message["cart_id"],
                now,
                Jsonb({"source": "unsubscribe_link"}),
            ),
        )
    return page(
        "You are unsubscribed", "You will not receive cart reminders at this address any more."
    )
