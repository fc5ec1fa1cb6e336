"""The one interface every channel provider implements: send a rendered message, get an id."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    """A rendered message, ready for a provider. ``message_id`` is the outbox row's id.

    ``recipient`` is what the channel addresses: an email address, an E.164 phone number, or
    the id of a row of ``app.push_subscriptions``. The optional fields after ``tags`` refine
    SMS and push: ``url`` is the link a push notification opens (the restore link; when it is
    not given the first link in ``text`` is used), ``image``/``icon`` decorate the
    notification, and ``sender`` overrides the configured SMS sender for this message (an
    E.164 number, or a Twilio Messaging Service SID starting with ``MG``).
    """

    org_id: str
    message_id: str
    cart_id: str
    channel: str
    recipient: str
    subject: str
    html: str
    text: str
    step_index: int = 0
    sender_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    image: str | None = None
    icon: str | None = None
    sender: str | None = None
    # Email only: reply address, SendGrid unsubscribe group, one-click unsubscribe link.
    reply_to: str | None = None
    unsubscribe_group_id: int | None = None
    unsubscribe_url: str | None = None
    # A SendGrid dynamic template renders the email from this data instead of html/text.
    template_id: str | None = None
    template_data: dict | None = None


@dataclass(frozen=True)
class SendResult:
    """What the provider accepted. ``segments`` is the SMS segment count (None elsewhere)."""

    provider: str
    provider_message_id: str | None
    segments: int | None = None


class ProviderError(Exception):
    """A send that did not go out. ``retryable`` is False when trying again cannot help
    (the request itself was rejected), True for timeouts, 5xx and rate limits.

    ``reason`` names well-known permanent outcomes callers may act on:
    ``'unsubscribed'`` (the phone sent STOP; it is now suppressed), ``'invalid_number'``,
    ``'subscription_gone'`` (the push subscription is gone: with ``code`` the push service
    answered 404/410 and it was deleted now; without, it was deleted before and nothing was
    sent),
    ``'not_configured'``. ``code`` is the provider's own error code or HTTP status.

    ``retry_after``: seconds the provider asked us to wait (its ``Retry-After``), if any.
    ``outcome_unknown``: the request was sent but no answer came (a read timeout): the
    provider may have accepted it, so it must not be sent again (see delivery/jobs.py).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        reason: str | None = None,
        code: int | str | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ):
        super().__init__(message)
        self.retryable = retryable and not outcome_unknown
        self.reason = reason
        self.code = code
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


# Longest wait a provider's Retry-After may impose before a retry (beyond it, the header is
# more likely wrong than meant).
MAX_RETRY_AFTER_SECONDS = 24 * 3600


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP date (RFC 9110 10.2.3);
    None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class Provider(Protocol):
    name: str

    def send(self, message: OutgoingMessage) -> SendResult:
        """Hand ``message`` to the provider once; raise ProviderError if it was not accepted."""
        ...
