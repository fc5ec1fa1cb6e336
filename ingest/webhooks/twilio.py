"""Twilio callbacks: message status (delivery receipts) and inbound SMS (replies, keywords).

Every request is checked first with the SDK's ``RequestValidator`` against the URL exactly as
Twilio called it and ALL posted parameters (Twilio adds parameters over time; the signature
covers whatever was sent). Behind a proxy the URL Flask sees differs from the public one, so
the candidates are ``APP_URL`` + path, the request URL, and the URL rebuilt from
``X-Forwarded-Proto``/``X-Forwarded-Host``/``Host``; each only selects what the HMAC is
checked against, so none of them can be forged without the auth token. A missing signature is
401, a wrong one 403, and nothing is stored.

The views only translate HTTP: status callbacks go to ``cartrecovery.sms_status`` (stored
once, delivery status moving forward only), inbound messages to ``cartrecovery.sms_inbound``
(routed to the orgs they concern, keywords applied, an opt-out no org knows yet held for
every org); keywords are answered with TwiML.
"""

from __future__ import annotations

import logging
from uuid import UUID

from flask import Blueprint, Response, jsonify, request
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.messaging_response import MessagingResponse

from cartrecovery import sms_inbound, sms_keywords, sms_status

from ..errors import ApiError
from ..runtime import runtime

log = logging.getLogger(__name__)

bp = Blueprint("twilio", __name__)

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


# --- status callbacks --------------------------------------------------------------------


@bp.post("/api/webhooks/twilio/status")
def status():
    """Record a delivery status once; 200 ``{stored, duplicate, delivery_status}``."""
    params = verified_params()
    sid = params.get("MessageSid") or params.get("SmsSid")
    status_value = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    if not sid or not status_value:
        raise ApiError(400, "invalid_callback", "MessageSid and MessageStatus are required")
    db = runtime().db
    located = sms_status.locate_message(
        db, _uuid(request.args.get("org_id")), _uuid(request.args.get("message_id")), sid
    )
    if located is None:
        log.info("twilio status %s for unknown message %s ignored", status_value, sid)
        return jsonify({"stored": False, "duplicate": False, "ignored": "unknown_message"})
    org_id, message_id = located
    return jsonify(
        sms_status.record_status(
            db,
            org_id,
            message_id,
            sid=sid,
            status=status_value,
            error_code=params.get("ErrorCode") or None,
            payload=_payload(params),
            headers=_headers(),
        )
    )


# --- inbound SMS -------------------------------------------------------------------------


@bp.post("/api/webhooks/twilio/inbound")
def inbound():
    """Store the inbound SMS once per org it concerns, apply a keyword, answer with TwiML."""
    params = verified_params()
    sid = params.get("MessageSid") or params.get("SmsMessageSid") or params.get("SmsSid")
    sender = params.get("From")
    if not sid or not sender:
        raise ApiError(400, "invalid_callback", "MessageSid and From are required")
    body = params.get("Body") or ""
    keyword = sms_keywords.classify(body, params.get("OptOutType"))
    rt = runtime()
    result = sms_inbound.receive(
        rt.db,
        rt.settings,
        sid=sid,
        phone=sms_inbound.e164_or_given(sender),
        to=sms_inbound.e164_or_given(params.get("To")),
        messaging_service=params.get("MessagingServiceSid"),
        keyword=keyword.value if keyword else None,
        body=body,
        payload=_payload(params),
        headers=_headers(),
    )
    twiml = MessagingResponse()
    if keyword is not None:
        twiml.message(sms_keywords.reply_text(keyword, result.org_names, result.help_text))
    return Response(str(twiml), status=200, mimetype="text/xml")
