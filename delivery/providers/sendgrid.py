"""SendGrid v3 mail send through the official SDK.

The message id travels in ``custom_args`` (SendGrid copies custom args onto every event, which
is how the event webhook finds the outbox row) and in a mail header, so a send can be traced
and deduplicated end to end. Custom args and categories carry ids only, never PII.
"""

from __future__ import annotations

from urllib.error import URLError

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Category, CustomArg, From, Header, Mail, To

from .base import OutgoingMessage, ProviderError, SendResult

TIMEOUT_SECONDS = 10.0
MESSAGE_ID_HEADER = "X-Cartrecovery-Message-Id"


class SendGridProvider:
    name = "sendgrid"

    def __init__(self, api_key: str, from_email: str, base_url: str,
                 timeout: float = TIMEOUT_SECONDS):
        self.client = SendGridAPIClient(api_key, host=base_url)
        # The SDK's HTTP client waits forever by default; child clients inherit this value.
        self.client.client.timeout = timeout
        self.from_email = from_email

    def build(self, message: OutgoingMessage) -> Mail:
        mail = Mail(
            from_email=From(self.from_email, message.sender_name),
            to_emails=To(message.recipient),
            subject=message.subject,
            plain_text_content=message.text,
            html_content=message.html,
        )
        args = {"message_id": message.message_id, "org_id": message.org_id,
                "cart_id": message.cart_id, **message.tags}
        mail.custom_arg = [CustomArg(key, str(value)) for key, value in args.items()]
        mail.category = [Category("cart_recovery"), Category(f"step_{message.step_index + 1}")]
        mail.header = Header(MESSAGE_ID_HEADER, message.message_id)
        return mail

    def send(self, message: OutgoingMessage) -> SendResult:
        """POST /v3/mail/send; a 2xx is accepted, its ``X-Message-Id`` is the provider id."""
        try:
            response = self.client.send(self.build(message))
        except HTTPError as exc:
            status = getattr(exc, "status_code", 0) or 0
            body = getattr(exc, "body", b"") or b""
            if isinstance(body, bytes):
                body = body.decode("utf-8", "replace")
            retryable = status == 429 or status >= 500
            raise ProviderError(f"sendgrid {status}: {body[:300]}", retryable=retryable) from exc
        except (URLError, TimeoutError, ConnectionError) as exc:
            raise ProviderError(f"sendgrid unreachable: {exc}", retryable=True) from exc
        headers = response.headers
        provider_id = headers.get("X-Message-Id") if headers is not None else None
        return SendResult(provider=self.name, provider_message_id=provider_id)
