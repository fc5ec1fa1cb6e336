"""Twilio callbacks: message status (delivery receipts) and inbound SMS (replies, keywords).

Every request is checked first with the SDK's ``RequestValidator`` against the URL exactly as
Twilio called it and ALL posted parameters (Twilio adds parameters over time; the signature
covers whatever was sent). Behind a proxy the URL Flask sees differs from the public one, so
the candidates are ``APP_URL`` + path, the request URL, and the URL rebuilt from
``X-Forwarded-Proto``/``X-Forwarded-Host``/``Host``; each only selects what the HMAC is
checked against, so none of them can be forged without the auth token. A missing signature is
401, a wrong one 403, and nothing is stored.

Status callbacks find their message by the ``org_id``/``message_id`` our provider put in the
(signed) callback URL, else by the Twilio SID. Each (SID, status) is stored once in raw.events
and app.message_events; the message's ``delivery_status`` only ever moves forward, since
callbacks can arrive out of order.

Inbound SMS are routed to orgs by the number they were sent to: an org whose sender identity
(settings ``sender_identities.sms``) names that number or messaging service owns it; a shared
sender (the global ``TWILIO_PHONE_NUMBER``/``TWILIO_MESSAGING_SERVICE_SID``, or an unknown
one) belongs to every org that has texted, suppressed, recorded consent for, or
stored that phone. Opt-outs apply to all of those orgs (an opt-out must never be lost),
opt-ins to the orgs that hold a STOP for the phone, HELP and ordinary replies to the org that
texted the phone last. Keywords are answered with TwiML.
"""

from __future__ import annotations

import logging
from uuid import UUID

from flask import Blueprint, Response, jsonify, request
from psycopg.types.json import Jsonb
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.messaging_response import MessagingResponse

from cartrecovery import outgoing_webhooks, phones
from cartrecovery.events import store_event
from cartrecovery.org_settings import get_settings
from delivery import sms_keywords
from delivery.providers.twilio_sms import suppress_phone
from delivery.sms_keywords import Keyword

from ..errors import ApiError
from ..runtime import runtime

log = logging.getLogger(__name__)

bp = Blueprint("twilio", __name__)

SOURCE = "twilio"
# Twilio message statuses in the order a message moves through them; a callback may only
# move a message to a higher rank. Terminal outcomes share a rank (the first one stands),
# 'read' (WhatsApp/RCS) comes after delivery.
STATUS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "partially_delivered": 4,
    "read": 5,
}
# Statuses recorded as message events (what analytics and outgoing webhooks read).
MESSAGE_EVENT_TYPES = {"sent", "delivered", "undelivered", "failed"}
# Delivery error codes that say the recipient cannot be texted again.
SUPPRESSING_ERRORS = {"21610": "stop", "30005": "invalid_number", "30006": "invalid_number"}
STORED_HEADERS = ("User-Agent", "I-Twilio-Idempotency-Token", "Content-Type")


# --- signature ---------------------------------------------------------------------------


def candidate_urls() -> list[str]:
    """The URLs Twilio may have signed for this request, most likely first."""
    query = request.query_string.decode("latin-1")
    path = request.script_root + request.path + (f"?{query}" if query else "")
    urls = [
        runtime().settings.app_url.rstrip("/") + request.path + (f"?{query}" if query else ""),
        request.url,
    ]
    proto = (request.headers.get("X-Forwarded-Proto") or request.scheme).split(",")[0].strip()
    host = (request.headers.get("X-Forwarded-Host") or request.host).split(",")[0].strip()
    urls.append(f"{proto}://{host}{path}")
    return list(dict.fromkeys(urls))


def verify_signature(
    token: str, urls: list[str], params, signature: str, algorithm: str | None = None
) -> bool:
    """True when ``signature`` signs one of ``urls`` with ``params`` under ``token``."""
    validator = RequestValidator(token)
    return any(validator.validate(url, params, signature, algorithm) for url in urls)


def verified_params():
    """The posted parameters of a request Twilio signed; ApiError 401/403/415 otherwise."""
    token = runtime().settings.twilio_auth_token
    if not token:
        raise ApiError(
            401,
            "signature_not_configured",
            "TWILIO_AUTH_TOKEN is not set; Twilio callbacks cannot be accepted",
        )
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise ApiError(401, "missing_signature", f"{SIGNATURE_HEADER} header missing")
    if request.mimetype == "application/x-www-form-urlencoded":
        params = request.form
    elif "bodySHA256" in request.args:
        # JSON callbacks sign the URL (which carries the body's hash) with no parameters.
        params = request.get_data(as_text=True)
    else:
        raise ApiError(
            415, "unsupported_media_type", "expected an application/x-www-form-urlencoded body"
        )
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    if not verify_signature(token, candidate_urls(), params, signature, algorithm):
        raise ApiError(403, "invalid_signature", f"{SIGNATURE_HEADER} does not verify")
    if isinstance(params, str):
        raise ApiError(415, "unsupported_media_type", "JSON callbacks are not handled here")
    return params


def _payload(params) -> dict:
    return {k: (v[0] if len(v) == 1 else v) for k, v in params.lists()}


def _headers() -> dict:
    return {h: request.headers[h] for h in STORED_HEADERS if h in request.headers}


def _uuid(value) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def _phone(value: str) -> str:
    """E.164 for a phone number; other senders (short codes, alphanumeric) as given."""
    text = (value or "").strip()
    return phones.e164_or_none(text) or text


# --- status callbacks --------------------------------------------------------------------


def _locate_message(
    org_id: UUID | None, message_id: UUID | None, sid: str
) -> tuple[UUID, UUID] | None:
    """(org, message) a status callback is about, from the callback URL or the SID."""
    db = runtime().db
    if org_id is not None:
        with db.tenant(org_id) as conn:
            row = conn.execute(
                "SELECT message_id FROM app.outbox WHERE org_id = %s "
                "AND (message_id = %s OR provider_message_id = %s) "
                "ORDER BY (message_id = %s) DESC LIMIT 1",
                (org_id, message_id, sid, message_id),
            ).fetchone()
        return (org_id, row["message_id"]) if row else None
    with db.system() as conn:
        row = conn.execute(
            "SELECT org_id, message_id FROM app.outbox "
            "WHERE provider_message_id = %s AND channel = 'sms' LIMIT 1",
            (sid,),
        ).fetchone()
    return (row["org_id"], row["message_id"]) if row else None


@bp.post("/api/webhooks/twilio/status")
def status():
    """Record a delivery status once; 200 ``{stored, duplicate, delivery_status}``."""
    params = verified_params()
    sid = params.get("MessageSid") or params.get("SmsSid")
    status_value = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    if not sid or not status_value:
        raise ApiError(400, "invalid_callback", "MessageSid and MessageStatus are required")
    located = _locate_message(
        _uuid(request.args.get("org_id")), _uuid(request.args.get("message_id")), sid
    )
    if located is None:
        log.info("twilio status %s for unknown message %s ignored", status_value, sid)
        return jsonify({"stored": False, "duplicate": False, "ignored": "unknown_message"})
    org_id, message_id = located
    error_code = params.get("ErrorCode") or None
    key = f"{sid}:{status_value}"
    with runtime().db.tenant(org_id) as conn:
        message = conn.execute(
            "SELECT message_id, cart_id, recipient, delivery_status FROM app.outbox "
            "WHERE org_id = %s AND message_id = %s FOR UPDATE",
            (org_id, message_id),
        ).fetchone()
        if message is None:  # deleted since it was located (its cart was erased)
            return jsonify({"stored": False, "duplicate": False, "ignored": "unknown_message"})
        event_id = store_event(
            conn,
            org_id=org_id,
            source=SOURCE,
            topic=f"status.{status_value}",
            dedup_key=key,
            payload=_payload(params),
            headers=_headers(),
            cart_id=message["cart_id"],
        )
        if event_id is None:
            return jsonify(
                {"stored": False, "duplicate": True, "delivery_status": message["delivery_status"]}
            )
        if status_value in MESSAGE_EVENT_TYPES:
            conn.execute(
                """
                INSERT INTO app.message_events
                  (org_id, event_key, message_id, cart_id, event_type, occurred_at, payload)
                VALUES (%s, %s, %s, %s, %s, now(), %s)
                ON CONFLICT (org_id, event_key) DO NOTHING
                """,
                (
                    org_id,
                    key,
                    message_id,
                    message["cart_id"],
                    status_value,
                    Jsonb(_payload(params)),
                ),
            )
            outgoing = outgoing_webhooks.event_type_for("twilio", status_value)
            if outgoing:
                outgoing_webhooks.emit(
                    conn,
                    org_id,
                    outgoing,
                    {
                        "message_id": message_id,
                        "cart_id": message["cart_id"],
                        "status": status_value,
                    },
                )
        current = STATUS_RANK.get(message["delivery_status"] or "", -1)
        delivery_status = message["delivery_status"]
        if STATUS_RANK.get(status_value, -1) > current:
            delivery_status = status_value
            conn.execute(
                "UPDATE app.outbox SET delivery_status = %s, delivery_status_at = now(), "
                "delivery_error_code = %s WHERE org_id = %s AND message_id = %s",
                (status_value, error_code, org_id, message_id),
            )
        reason = SUPPRESSING_ERRORS.get(str(error_code or ""))
        if reason and message["recipient"]:
            suppress_phone(conn, org_id, message["recipient"], reason)
    return jsonify({"stored": True, "duplicate": False, "delivery_status": delivery_status})


# --- inbound SMS -------------------------------------------------------------------------


def _orgs_for(to: str, messaging_service: str | None, phone: str) -> list[dict]:
    """Orgs an inbound SMS concerns, each ``{org_id, name, has_stop}``, the org that texted
    the phone most recently first (see the module docstring for the rules)."""
    settings = runtime().settings
    shared = (to and to == _phone(settings.twilio_phone_number or "")) or (
        messaging_service and messaging_service == settings.twilio_messaging_service_sid
    )
    with runtime().db.system() as conn:
        owners = conn.execute(
            """
            SELECT org_id FROM app.orgs
            WHERE settings -> 'sender_identities' -> 'sms' ->> 'from_number' = %s
               OR (%s::text IS NOT NULL AND
                   settings -> 'sender_identities' -> 'sms' ->> 'messaging_service_sid' = %s)
            """,
            (to, messaging_service, messaging_service),
        ).fetchall()
        owner_ids = [r["org_id"] for r in owners]
        rows = conn.execute(
            """
            WITH contacts AS (
              SELECT org_id, coalesce(sent_at, created_at) AS contacted_at
                FROM app.outbox WHERE channel = 'sms' AND recipient = %(phone)s
              UNION ALL
              SELECT org_id, NULL FROM app.suppressions
                WHERE channel = 'sms' AND address = %(phone)s
              UNION ALL
              SELECT org_id, NULL FROM app.consents
                WHERE channel = 'sms' AND address = %(phone)s
              UNION ALL
              SELECT org_id, NULL FROM app.customers WHERE phone = %(phone)s
              UNION ALL
              SELECT org_id, NULL FROM unnest(%(owners)s::uuid[]) AS o(org_id)
            )
            SELECT o.org_id, o.name, max(c.contacted_at) AS contacted_at,
                   EXISTS (SELECT 1 FROM app.suppressions s
                           WHERE s.org_id = o.org_id AND s.channel = 'sms'
                             AND s.address = %(phone)s AND s.reason = 'stop') AS has_stop
            FROM contacts c JOIN app.orgs o USING (org_id)
            WHERE %(restrict)s = false OR o.org_id = ANY(%(owners)s::uuid[])
            GROUP BY o.org_id, o.name
            ORDER BY max(c.contacted_at) DESC NULLS LAST, o.created_at
            """,
            {"phone": phone, "owners": owner_ids, "restrict": bool(owner_ids) and not shared},
        ).fetchall()
    return rows


def _targets(keyword: Keyword | None, orgs: list[dict]) -> list[dict]:
    if keyword is Keyword.OPT_OUT:
        return orgs
    if keyword is Keyword.OPT_IN:
        stopped = [o for o in orgs if o["has_stop"]]
        return stopped or orgs[:1]
    return orgs[:1]


@bp.post("/api/webhooks/twilio/inbound")
def inbound():
    """Store the inbound SMS once per org it concerns, apply a keyword, answer with TwiML."""
    params = verified_params()
    sid = params.get("MessageSid") or params.get("SmsMessageSid") or params.get("SmsSid")
    sender = params.get("From")
    if not sid or not sender:
        raise ApiError(400, "invalid_callback", "MessageSid and From are required")
    phone = _phone(sender)
    body = params.get("Body") or ""
    keyword = sms_keywords.classify(body, params.get("OptOutType"))
    to = _phone(params.get("To") or "")
    targets = _targets(keyword, _orgs_for(to, params.get("MessagingServiceSid"), phone))
    payload, headers = _payload(params), _headers()
    topic = f"inbound.{keyword.value}" if keyword else "inbound"
    names: list[str] = []
    help_text = None
    for org in targets:
        with runtime().db.tenant(org["org_id"]) as conn:
            stored = store_event(
                conn,
                org_id=org["org_id"],
                source=SOURCE,
                topic=topic,
                dedup_key=sid,
                payload=payload,
                headers=headers,
            )
            # A redelivered STOP must not undo a later START (and vice versa).
            if stored is not None and keyword is not None:
                sms_keywords.apply(conn, org["org_id"], keyword, phone, body)
            if keyword is Keyword.HELP and help_text is None:
                template = get_settings(conn, org["org_id"]).get("sms_help_text")
                # The setting may name the store as {store}.
                help_text = str(template).replace("{store}", org["name"]) if template else None
        names.append(org["name"])
    if not targets:
        log.warning(
            "inbound sms %s (%s) matches no org; not stored",
            sid,
            keyword.value if keyword else "reply",
        )
    else:
        log.info(
            "inbound sms %s (%s) for %d org(s)",
            sid,
            keyword.value if keyword else "reply",
            len(targets),
        )
    twiml = MessagingResponse()
    if keyword is not None:
        twiml.message(sms_keywords.reply_text(keyword, names, help_text))
    return Response(str(twiml), status=200, mimetype="text/xml")
