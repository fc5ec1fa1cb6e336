"""``GET /r/<token>``: the restore link in every recovery message.

A genuine, unexpired token (see ``cartrecovery.signed_links``) counts a click on its message
(``app.message_events``, type ``click``, with the cart and the target URL: what attribution
looks for when the order arrives) and redirects (302) to the cart's recovery URL on the
platform, or to the store when the cart has none, with ``utm_source=cartrecovery``,
``utm_medium=<channel>``, ``utm_campaign=<campaign id>`` added to its query.

Repeated hits on one link within a minute of a counted click (mail scanners, double taps)
count once; later clicks count again (event key ``restore:<message id>:<unix ms>``).

An expired link answers 410, a forged or damaged one 400, and a link
whose cart is gone 410: a small HTML page for browsers, JSON otherwise; nothing is recorded.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, jsonify, redirect, request
from psycopg.types.json import Jsonb

from cartrecovery.signed_links import ExpiredToken, InvalidToken, read_token

from .runtime import runtime

bp = Blueprint("restore", __name__)

CLICK_WINDOW_SECONDS = 60
MAX_TOKEN_LENGTH = 512
UTM_SOURCE = "cartrecovery"
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body style="font-family:Helvetica,Arial,sans-serif;max-width:480px;margin:64px auto;
padding:0 16px;color:#111827">
<h1 style="font-size:22px">{title}</h1>
<p style="font-size:16px;line-height:24px">{message}</p>
{form}
</body></html>"""


def page(title: str, message: str, status: int = 200, form: str = ""):
    """A small HTML page for people who follow our links (``form``: trusted markup)."""
    body = _PAGE.format(title=html.escape(title), message=html.escape(message), form=form)
    return body, status, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


def _safe_target(url: str | None) -> str | None:
    """Only absolute http(s) URLs are redirect targets (no javascript:, no relative paths)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return url.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def with_utm(url: str, channel: str | None, campaign_id: str | None) -> str:
    """``url`` with the UTM parameters set (replacing any given), other parameters kept."""
    parts = urlsplit(url)
    utm = {
        "utm_source": UTM_SOURCE,
        "utm_medium": channel or "email",
        "utm_campaign": campaign_id or "",
    }
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in utm]
    query += [(k, v) for k, v in utm.items() if v]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _refuse(status: int, code: str, title: str, message: str):
    if (
        request.accept_mimetypes.accept_html
        and request.accept_mimetypes["text/html"] >= request.accept_mimetypes["application/json"]
    ):
        return page(title, message, status)
    body = {"error": {"code": code, "message": message, "details": {}}}
    return jsonify(body), status, {"Cache-Control": "no-store"}


@bp.get("/r/<path:token>")
def restore(token: str):
    """Count the click and redirect to the cart; 410 when expired or the cart is gone, 400
    when the link is not genuine."""
    rt = runtime()
    if len(token) > MAX_TOKEN_LENGTH:
        return _refuse(
            400,
            "invalid_link",
            "This link is not valid",
            "This link is damaged or incomplete. Please use the link from your message again.",
        )
    try:
        link = read_token(rt.settings.secret_key, token)
    except ExpiredToken:
        return _refuse(
            410,
            "link_expired",
            "This link has expired",
            "This link is no longer valid. Visit the store to find your items again.",
        )
    except InvalidToken:
        return _refuse(
            400,
            "invalid_link",
            "This link is not valid",
            "This link is damaged or incomplete. Please use the link from your message again.",
        )

    now = datetime.now(UTC)
    with rt.db.tenant(link.org_id) as conn:
        cart = conn.execute(
            """
            SELECT c.restore_url, cn.shop_domain
            FROM app.carts c
            LEFT JOIN app.connections cn
                   ON cn.org_id = c.org_id AND cn.connection_id = c.connection_id
            WHERE c.org_id = %s AND c.cart_id = %s
            """,
            (link.org_id, link.cart_id),
        ).fetchone()
        target = None
        if cart is not None:
            target = _safe_target(cart["restore_url"]) or (
                _safe_target(f"https://{cart['shop_domain']}") if cart["shop_domain"] else None
            )
        if target is None:
            return _refuse(
                410,
                "cart_unavailable",
                "This cart is no longer available",
                "We could not find this cart any more. Visit the store to shop again.",
            )
        message = (
            conn.execute(
                "SELECT channel, campaign_id FROM app.outbox WHERE org_id = %s AND message_id = %s",
                (link.org_id, link.message_id),
            ).fetchone()
            or {}
        )
        channel = message.get("channel")
        campaign_id = str(message["campaign_id"]) if message.get("campaign_id") else None
        target = with_utm(target, channel, campaign_id)
        # Hits within the window after a counted click are the same click (mail scanners,
        # double taps); the lock makes two simultaneous hits count once too.
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"restore:{link.message_id}",)
        )
        conn.execute(
            """
            INSERT INTO app.message_events
                (org_id, event_key, message_id, cart_id, event_type, url, occurred_at, payload)
            SELECT %(org)s, %(key)s, %(message)s, %(cart)s, 'click', %(url)s, %(now)s,
                   %(payload)s
            WHERE NOT EXISTS (
                SELECT 1 FROM app.message_events
                WHERE org_id = %(org)s AND cart_id = %(cart)s AND event_type = 'click'
                  AND message_id = %(message)s AND payload->>'source' = 'restore_link'
                  AND occurred_at > %(now)s - make_interval(secs => %(window)s))
            ON CONFLICT (org_id, event_key) DO NOTHING
            """,
            {
                "org": link.org_id,
                "key": f"restore:{link.message_id}:{int(now.timestamp() * 1000)}",
                "message": link.message_id,
                "cart": link.cart_id,
                "url": target,
                "now": now,
                "window": CLICK_WINDOW_SECONDS,
                "payload": Jsonb(
                    {"source": "restore_link", "channel": channel, "campaign_id": campaign_id}
                ),
            },
        )
    response = redirect(target, code=302)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
