"""Channel providers, chosen by settings: one adapter per provider behind ``Provider``."""

from __future__ import annotations

import threading
import weakref

from cartrecovery.runtime import Runtime

from .base import OutgoingMessage, Provider, ProviderError, SendResult
from .local import LocalProvider
from .sendgrid import SendGridProvider
from .twilio_sms import TwilioSmsProvider
from .webpush import WebPushProvider

__all__ = ["OutgoingMessage", "Provider", "ProviderError", "SendResult", "provider_for"]

CHANNELS = ("email", "sms", "push")

# Providers hold HTTP connection pools (Twilio's and pywebpush's requests sessions), so one
# per runtime, channel and settings is reused across sends instead of built per message.
_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _build(runtime: Runtime, channel: str) -> Provider | None:
    settings = runtime.settings
    if channel == "email":
        if settings.sendgrid_api_key:
            return SendGridProvider(
                settings.sendgrid_api_key,
                settings.from_email,
                settings.sendgrid_base_url,
                timeout=settings.provider_timeout_seconds,
            )
        return LocalProvider(runtime.db)
    if channel == "sms":
        if settings.twilio_account_sid and settings.twilio_auth_token:
            return TwilioSmsProvider(
                settings.twilio_account_sid,
                settings.twilio_auth_token,
                app_url=settings.app_url,
                phone_number=settings.twilio_phone_number,
                messaging_service_sid=settings.twilio_messaging_service_sid,
                base_url=settings.twilio_base_url,
                db=runtime.db,
                timeout=settings.provider_timeout_seconds,
            )
        return LocalProvider(runtime.db)
    if channel == "push":
        if settings.vapid_private_key:
            subject = settings.vapid_subject or f"mailto:{settings.from_email}"
            return WebPushProvider(
                runtime.db,
                settings.vapid_private_key,
                subject,
                timeout=settings.provider_timeout_seconds,
            )
        return LocalProvider(runtime.db)
    return None


def provider_for(runtime: Runtime, channel: str) -> Provider | None:
    """The provider that sends ``channel`` ('email', 'sms', 'push') under these settings, or
    None for an unknown channel.

    Email → SendGrid when SENDGRID_API_KEY is set; SMS → Twilio when TWILIO_ACCOUNT_SID and
    TWILIO_AUTH_TOKEN are set (sender: ``OutgoingMessage.sender``, else the org's
    ``sender_identities.sms``, else TWILIO_MESSAGING_SERVICE_SID, else TWILIO_PHONE_NUMBER);
    push → web push when VAPID_PRIVATE_KEY is set. Otherwise the built-in local outbox
    provider stores the message. The same instance is returned for the
    same runtime, channel and settings.
    """
    if channel not in CHANNELS:
        return None
    key = (channel, runtime.settings)
    with _cache_lock:
        per_runtime = _cache.setdefault(runtime, {})
        provider = per_runtime.get(key)
        if provider is None:
            provider = per_runtime[key] = _build(runtime, channel)
    return provider
