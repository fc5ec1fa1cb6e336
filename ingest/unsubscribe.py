"""``/u/<token>``: the unsubscribe link every recovery email carries.

GET shows a confirmation page and changes nothing (mail scanners fetch links; an unsubscribe
must be the recipient's own act); POST suppresses the address for that channel in the org,
records the withdrawal in the consent ledger and the event on the message.
"""

from __future__ import annotations

from flask import Blueprint, request

from cartrecovery import unsubscribes
from cartrecovery.signed_links import UNSUBSCRIBE_SALT, InvalidToken, read_token

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
    row = unsubscribes.message_to_unsubscribe(runtime().db, link.org_id, link.message_id)
    if row is None:
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
    unsubscribes.unsubscribe(
        runtime().db,
        message,
        ip=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
    )
    return page(
        "You are unsubscribed", "You will not receive cart reminders at this address any more."
    )
