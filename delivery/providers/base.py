"""The one interface every channel provider implements: send a rendered message, get an id."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    """A rendered message, ready for a provider. ``message_id`` is the outbox row's id."""

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


@dataclass(frozen=True)
class SendResult:
    provider: str
    provider_message_id: str | None


class ProviderError(Exception):
    """A send that did not go out. ``retryable`` is False when trying again cannot help
    (the request itself was rejected), True for timeouts, 5xx and rate limits."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class Provider(Protocol):
    name: str

    def send(self, message: OutgoingMessage) -> SendResult:
        """Hand ``message`` to the provider once; raise ProviderError if it was not accepted."""
        ...
