"""Channel providers, chosen by settings: one adapter per provider behind ``Provider``."""

from __future__ import annotations

from cartrecovery.runtime import Runtime

from .base import OutgoingMessage, Provider, ProviderError, SendResult
from .local import LocalProvider
from .sendgrid import SendGridProvider

__all__ = ["OutgoingMessage", "Provider", "ProviderError", "SendResult", "provider_for"]


def provider_for(runtime: Runtime, channel: str) -> Provider | None:
    """The provider that sends ``channel`` under these settings, or None if none can.

    Email goes to SendGrid when SENDGRID_API_KEY is set, else to the built-in local outbox.
    """
    settings = runtime.settings
    if channel == "email":
        if settings.sendgrid_api_key:
            return SendGridProvider(settings.sendgrid_api_key, settings.from_email,
                                    settings.sendgrid_base_url)
        return LocalProvider(runtime.db)
    return None
