"""SMS through Twilio Programmable Messaging, with the official SDK.

The request is ``POST /2010-04-01/Accounts/{sid}/Messages.json`` (form-encoded, Basic auth)
with ``To``, ``From`` or ``MessagingServiceSid``, ``Body`` and ``StatusCallback``. The status
callback URL carries our org and message ids: it is part of what Twilio signs, so it cannot be
forged, and a callback that beats our own "sent" bookkeeping still finds its message.

Twilio 9 has no base-URL setting; ``TWILIO_BASE_URL`` (a sandbox, a test server) is honoured
by an HTTP client that rewrites ``https://api.twilio.com`` before each request.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlencode

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from cartrecovery import suppressions
from cartrecovery.db import Database

from .base import OutgoingMessage, ProviderError, SendResult, parse_retry_after
from .sms_segments import count_segments

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"
STATUS_CALLBACK_PATH = "/api/webhooks/twilio/status"
TIMEOUT_SECONDS = 10.0
OPT_OUT_FOOTER = "Reply STOP to opt out."

# Twilio error codes that no retry can fix, and what they mean for the recipient.
UNSUBSCRIBED = 21610  # the recipient replied STOP to this sender
INVALID_NUMBER_CODES = {21211, 21614}  # not a valid phone number / not a mobile number
RATE_LIMITED_CODES = {20429, 14107}


class BaseUrlHttpClient(TwilioHttpClient):
    """Twilio's requests-based client, sending to ``base_url`` instead of api.twilio.com."""

    def __init__(self, base_url: str | None, timeout: float = TIMEOUT_SECONDS):
        super().__init__(timeout=timeout)
        self.base_url = (base_url or "").rstrip("/")

    def request(self, method, url, *args, **kwargs):
        if self.base_url and url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API) :]
        response = super().request(method, url, *args, **kwargs)
        # Per thread: one provider serves a worker's threads, and an error's Retry-After is
        # read from the answer that raised it.
        self._answers.last = response
        return response

    @property
    def _answers(self) -> threading.local:
        answers = self.__dict__.get("_answers_local")
        if answers is None:
            answers = self.__dict__.setdefault("_answers_local", threading.local())
        return answers

    def last_retry_after(self) -> float | None:
        """The Retry-After of the last answer this thread received, in seconds."""
        response = getattr(self._answers, "last", None)
        headers = getattr(response, "headers", None) or {}
        return parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))


def sms_body(text: str) -> str:
    """The SMS text for a rendered text part: trimmed, with opt-out language if it has none.

    Carriers and the CTIA expect recurring marketing texts to say how to stop them.
    """
    body = "\n".join(line.rstrip() for line in (text or "").strip().splitlines())
    if "stop" not in body.lower():
        body = f"{body}\n{OPT_OUT_FOOTER}" if body else OPT_OUT_FOOTER
    return body


def status_callback_url(app_url: str, org_id: str, message_id: str) -> str:
    query = urlencode({"org_id": org_id, "message_id": message_id})
    return f"{app_url.rstrip('/')}{STATUS_CALLBACK_PATH}?{query}"


def org_sms_identity(org_settings: dict) -> dict:
    """The org's SMS sender identity (``sender_identities.sms``: ``from_number`` or
    ``messaging_service_sid``), empty when it has none."""
    identities = org_settings.get("sender_identities") or {}
    identity = identities.get("sms") if isinstance(identities, dict) else None
    return identity if isinstance(identity, dict) else {}


def record_segments(conn, org_id: str, message_id: str, segments: int) -> None:
    """Store the segment count on the outbox row (a no-op when there is no such row)."""
    conn.execute(
        "UPDATE app.outbox SET segments = %s WHERE org_id = %s AND message_id = %s",
        (segments, org_id, message_id),
    )


class TwilioSmsProvider:
    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        app_url: str,
        phone_number: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str | None = None,
        db: Database | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ):
        self.client = Client(
            account_sid, auth_token, http_client=BaseUrlHttpClient(base_url, timeout)
        )
        self.app_url = app_url
        self.phone_number = phone_number
        self.messaging_service_sid = messaging_service_sid
        self.db = db

    def _sender(self, message: OutgoingMessage, org_settings: dict) -> dict:
        """``from_`` or ``messaging_service_sid``: the message's own sender, else the org's
        (settings ``sender_identities.sms``), else TWILIO_MESSAGING_SERVICE_SID, else
        TWILIO_PHONE_NUMBER."""
        identity = org_sms_identity(org_settings)
        for candidate in (
            message.sender,
            identity.get("messaging_service_sid"),
            identity.get("from_number"),
            self.messaging_service_sid,
            self.phone_number,
        ):
            if candidate:
                candidate = str(candidate).strip()
                if candidate.startswith("MG"):
                    return {"messaging_service_sid": candidate}
                return {"from_": candidate}
        raise ProviderError(
            "no SMS sender: set TWILIO_PHONE_NUMBER or TWILIO_MESSAGING_SERVICE_SID",
            retryable=False,
            reason="not_configured",
        )

    def _prepare(self, message: OutgoingMessage, segments: int) -> dict:
        org_settings: dict = {}
        if self.db is not None:
            from cartrecovery.org_settings import get_settings

            with self.db.tenant(message.org_id) as conn:
                try:
                    org_settings = get_settings(conn, message.org_id)
                except LookupError:
                    org_settings = {}
                record_segments(conn, message.org_id, message.message_id, segments)
        return self._sender(message, org_settings)

    def send(self, message: OutgoingMessage) -> SendResult:
        """Create the message at Twilio; its SID is the provider id.

        Raises ProviderError: retryable for 429/5xx/network errors; not retryable for
        rejected requests, with ``reason='unsubscribed'`` (Twilio error 21610, the phone is
        then suppressed) or ``'invalid_number'`` (also suppressed).
        """
        body = sms_body(message.text)
        segments = count_segments(body).segments
        sender = self._prepare(message, segments)
        try:
            created = self.client.messages.create(
                to=message.recipient,
                body=body,
                status_callback=status_callback_url(
                    self.app_url, message.org_id, message.message_id
                ),
                **sender,
            )
        except TwilioRestException as exc:
            raise self._error(message, exc) from exc
        except requests.ReadTimeout as exc:
            # Sent, unanswered: Twilio may have created the message; never send it twice.
            raise ProviderError(
                f"twilio did not answer: {exc}", retryable=False, outcome_unknown=True
            ) from exc
        except (requests.RequestException, TwilioException) as exc:
            raise ProviderError(f"twilio unreachable: {exc}", retryable=True) from exc
        return SendResult(provider=self.name, provider_message_id=created.sid, segments=segments)

    def _error(self, message: OutgoingMessage, exc: TwilioRestException) -> ProviderError:
        status, code = exc.status or 0, exc.code
        text = f"twilio {status} error {code}: {exc.msg}"[:500]
        if code == UNSUBSCRIBED or code in INVALID_NUMBER_CODES:
            reason = "unsubscribed" if code == UNSUBSCRIBED else "invalid_number"
            if self.db is not None:
                with self.db.tenant(message.org_id) as conn:
                    suppressions.suppress(
                        conn,
                        message.org_id,
                        "sms",
                        message.recipient,
                        "stop" if code == UNSUBSCRIBED else "invalid_number",
                    )
            return ProviderError(text, retryable=False, reason=reason, code=code)
        retryable = status == 429 or status >= 500 or code in RATE_LIMITED_CODES
        http_client = getattr(self.client, "http_client", None)
        retry_after = (
            http_client.last_retry_after() if isinstance(http_client, BaseUrlHttpClient) else None
        )
        return ProviderError(text, retryable=retryable, code=code, retry_after=retry_after)
