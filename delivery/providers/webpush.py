"""Web push (RFC 8030) with VAPID (RFC 8292), encrypted as aes128gcm (RFC 8291), via pywebpush.

The outbox recipient of a push message is the id of an ``app.push_subscriptions`` row (the
tracking snippet's service-worker helper stores them). Each send passes a fresh claims dict
(pywebpush fills ``aud``/``exp`` in place, so a shared dict would carry the first endpoint's
audience to every later push) and an explicit TTL (pywebpush defaults to 0: an offline device
would never see the message). A 404/410 answer means the browser dropped the subscription:
the row is deleted, the answer logged as a warning, and the send job holds the message as
``push_subscription_gone`` with the status kept (a later message for the same subscription is
never attempted: ``no_push_subscription``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from uuid import UUID

import requests
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush

from cartrecovery.db import Database

from .base import OutgoingMessage, ProviderError, SendResult

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 24 * 3600
TIMEOUT_SECONDS = 10.0
BODY_MAX_CHARS = 240
_URL = re.compile(r"https?://[^\s<>\"')]+")


def load_vapid_key(value: str) -> Vapid02:
    """A VAPID signer from a PEM string, a PEM/DER file path, or a base64url raw (32-byte)
    or DER private key. Raises ValueError when it is none of these or not a P-256 key.

    pywebpush itself refuses PEM strings (it takes them for file names), hence this loader.
    """
    text = (value or "").strip()
    if not text:
        raise ValueError("VAPID_PRIVATE_KEY is empty")
    try:
        if "-----BEGIN" in text:
            key = load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
                key.curve, ec.SECP256R1
            ):
                raise ValueError("not a P-256 (prime256v1) key")
            return Vapid02(key)
        if os.path.isfile(text):
            with open(text, encoding="utf-8") as handle:
                return load_vapid_key(handle.read())
        return Vapid02.from_string(text)
    except ValueError as exc:
        raise ValueError(f"VAPID_PRIVATE_KEY is not a usable P-256 private key: {exc}") from None
    except Exception as exc:  # py_vapid raises assorted errors on malformed base64 / DER
        raise ValueError(
            f"VAPID_PRIVATE_KEY is not a usable P-256 private key: {type(exc).__name__}"
        ) from None


def push_url(message: OutgoingMessage) -> str | None:
    """The link the notification opens: the message's url, else the first link in its text."""
    if message.url:
        return message.url
    found = _URL.search(message.text or "")
    return found.group(0) if found else None


def notification_payload(message: OutgoingMessage) -> dict:
    """The JSON our service worker shows: title, body, url, tag (one per cart, so a newer
    reminder replaces an older one on the device), optional icon/image, and ids only in
    ``data``."""
    url = push_url(message)
    text = message.text or ""
    if url:
        text = text.replace(url, " ")
    body = " ".join(text.split())
    if len(body) > BODY_MAX_CHARS:
        body = body[: BODY_MAX_CHARS - 1].rstrip() + "…"
    payload = {
        "title": " ".join((message.subject or message.sender_name or "").split()),
        "body": body,
        "icon": message.icon,
        "image": message.image,
        "url": url,
        "tag": f"cart-{message.cart_id}",
        "data": {
            "cart_id": message.cart_id,
            "message_id": message.message_id,
            "campaign_step": str(message.step_index + 1),
        },
    }
    return {k: v for k, v in payload.items() if v is not None}


def topic_for(cart_id: str) -> str:
    """RFC 8030 ``Topic`` (≤ 32 base64url characters): one per cart, so a push service
    holding an undelivered reminder replaces it with the newer one."""
    try:
        return UUID(str(cart_id)).hex  # exactly 32 characters
    except ValueError:
        return re.sub(r"[^A-Za-z0-9_-]", "", str(cart_id))[:32]


def find_subscription(conn, org_id: str, recipient: str) -> dict | None:
    """The subscription a push message addresses: by subscription id, or by endpoint."""
    try:
        subscription_id = UUID(str(recipient))
    except ValueError:
        return conn.execute(
            "SELECT subscription_id, endpoint, p256dh, auth FROM app.push_subscriptions "
            "WHERE org_id = %s AND endpoint = %s",
            (org_id, recipient),
        ).fetchone()
    return conn.execute(
        "SELECT subscription_id, endpoint, p256dh, auth FROM app.push_subscriptions "
        "WHERE org_id = %s AND subscription_id = %s",
        (org_id, subscription_id),
    ).fetchone()


class WebPushProvider:
    name = "webpush"

    def __init__(
        self,
        db: Database,
        private_key: str,
        subject: str,
        *,
        ttl: int = DEFAULT_TTL_SECONDS,
        urgency: str = "normal",
        timeout: float = TIMEOUT_SECONDS,
    ):
        self.db = db
        self.private_key = private_key
        self.subject = subject
        self.ttl = ttl
        self.urgency = urgency
        self.timeout = timeout
        self.session = requests.Session()  # one connection pool per push service host
        self._vapid: Vapid02 | None = None
        self._lock = threading.Lock()

    def _signer(self) -> Vapid02:
        with self._lock:
            if self._vapid is None:
                try:
                    self._vapid = load_vapid_key(self.private_key)
                except ValueError as exc:
                    raise ProviderError(
                        str(exc), retryable=False, reason="not_configured"
                    ) from None
            return self._vapid

    def send(self, message: OutgoingMessage) -> SendResult:
        """Encrypt and POST the notification to the subscription's push service.

        201/202 is accepted (the ``Location`` header, when given, is the provider id).
        Raises ProviderError: 404/410 → the subscription is deleted, not retryable,
        ``reason='subscription_gone'`` (also when the subscription no longer exists);
        429/5xx/network → retryable; other rejections → not retryable.
        """
        with self.db.tenant(message.org_id) as conn:
            subscription = find_subscription(conn, message.org_id, message.recipient)
        if subscription is None:
            raise ProviderError(
                "push subscription not found", retryable=False, reason="subscription_gone"
            )
        signer = self._signer()
        info = {
            "endpoint": subscription["endpoint"],
            "keys": {"p256dh": subscription["p256dh"], "auth": subscription["auth"]},
        }
        data = json.dumps(notification_payload(message), ensure_ascii=False, separators=(",", ":"))
        headers = {"Urgency": self.urgency, "Topic": topic_for(message.cart_id)}
        try:
            response = webpush(
                info,
                data=data,
                vapid_private_key=signer,
                vapid_claims={"sub": self.subject},  # fresh per call: pywebpush mutates it
                ttl=self.ttl,
                timeout=self.timeout,
                headers=headers,
                requests_session=self.session,
            )
        except WebPushException as exc:
            raise self._error(message, subscription, exc) from exc
        except requests.RequestException as exc:
            raise ProviderError(f"push service unreachable: {exc}", retryable=True) from exc
        except (ValueError, TypeError) as exc:  # malformed p256dh/auth: cannot encrypt
            raise ProviderError(
                f"push subscription keys unusable: {exc}",
                retryable=False,
                reason="invalid_subscription",
            ) from exc
        return SendResult(provider=self.name, provider_message_id=response.headers.get("Location"))

    def _error(
        self, message: OutgoingMessage, subscription: dict, exc: WebPushException
    ) -> ProviderError:
        response = exc.response
        status = getattr(response, "status_code", 0) or 0
        text = f"push service {status}: {getattr(response, 'text', '') or exc.message}"[:500]
        if status in (404, 410):
            with self.db.tenant(message.org_id) as conn:
                conn.execute(
                    "DELETE FROM app.push_subscriptions WHERE org_id = %s AND subscription_id = %s",
                    (message.org_id, subscription["subscription_id"]),
                )
            log.warning(
                "push subscription %s gone (the push service answered %s): deleted",
                subscription["subscription_id"],
                status,
            )
            return ProviderError(text, retryable=False, reason="subscription_gone", code=status)
        retryable = status == 429 or status >= 500
        return ProviderError(text, retryable=retryable, code=status or None)
