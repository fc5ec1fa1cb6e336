"""SendGrid v3 mail send through the official SDK, over reused (keep-alive) connections.

The message id travels in ``custom_args`` (SendGrid copies custom args onto every event, which
is how the event webhook finds the outbox row) and in a mail header, so a send can be traced
and deduplicated end to end. Custom args and categories carry ids only, never PII.

The SDK (``python_http_client``) builds a new urllib opener per call, and urllib sends
``Connection: close``: every mail paid a TCP (and TLS) handshake. The SDK still builds the
mail and the client (URL, headers); the request (the same ``json.dumps`` body) goes out over a
persistent ``http.client`` connection, one per thread (a connection carries one request at a
time, and the delivery worker sends from many threads). When a proxy is configured for the
host (urllib honours ``*_proxy`` variables) the SDK's own urllib path is used as before.
"""

from __future__ import annotations

import http.client
import io
import json
import select
import ssl
import threading
import time
import urllib.request
from urllib.error import HTTPError as UrllibHTTPError
from urllib.error import URLError
from urllib.parse import urlsplit

import python_http_client
from python_http_client.client import Response
from python_http_client.exceptions import HTTPError, handle_error
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Asm,
    Category,
    CustomArg,
    From,
    GroupId,
    Header,
    Mail,
    ReplyTo,
    To,
)

from .base import OutgoingMessage, ProviderError, SendResult, parse_retry_after

TIMEOUT_SECONDS = 10.0
MESSAGE_ID_HEADER = "X-Cartrecovery-Message-Id"
# A connection idle for longer is closed rather than reused: servers drop idle keep-alive
# connections after their own timeout (commonly 60 s or more), and a request written into a
# connection the server is closing has an unknown outcome.
MAX_IDLE_SECONDS = 20.0


class _Response:
    """What ``python_http_client.Response`` reads from a urllib response."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
        self._status, self._headers, self._body = status, headers, body

    def getcode(self) -> int:
        return self._status

    def read(self) -> bytes:
        return self._body

    def info(self) -> http.client.HTTPMessage:
        return self._headers


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle connection was closed by the server (readable means EOF or junk)."""
    if conn.sock is None:
        return True
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class KeepAliveTransport:
    """Sends urllib ``Request`` objects over one persistent connection per thread and origin.

    A request is written at most once: a connection is checked before reuse (idle too long or
    closed by the server → a new one), and a failure after the request was written is raised
    (as ``URLError``) instead of being retried here, since the provider may have accepted it;
    the caller's retry policy decides.
    """

    def __init__(self, max_idle: float = MAX_IDLE_SECONDS):
        self.max_idle = max_idle
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: set[http.client.HTTPConnection] = set()
        self._ssl_context: ssl.SSLContext | None = None

    def _connections(self) -> dict:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        return conns

    def _new(
        self, scheme: str, host: str, port: int | None, timeout: float | None
    ) -> http.client.HTTPConnection:
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()  # what urllib uses
            conn = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=self._ssl_context
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        with self._lock:
            self._all.add(conn)
        return conn

    def _discard(self, key: tuple, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._connections().pop(key, None)
        with self._lock:
            self._all.discard(conn)

    def open(self, request: urllib.request.Request, timeout: float | None) -> _Response:
        """Send ``request``; a 2xx answer is returned, others raise urllib's ``HTTPError``
        (as urllib's opener does), transport failures raise ``URLError``."""
        parts = urlsplit(request.full_url)
        key = (parts.scheme, parts.hostname, parts.port)
        conns = self._connections()
        entry = conns.get(key)
        if entry is not None:
            conn, last_used = entry
            if time.monotonic() - last_used > self.max_idle or _dropped(conn):
                self._discard(key, conn)
                entry = None
        if entry is None:
            conn = self._new(parts.scheme, parts.hostname, parts.port, timeout)
        elif conn.sock is not None:
            conn.sock.settimeout(timeout)
        conn.timeout = timeout
        headers = dict(request.header_items())
        headers["Connection"] = "keep-alive"
        try:
            conn.request(request.get_method(), request.selector, request.data, headers)
        except (OSError, http.client.HTTPException) as exc:
            self._discard(key, conn)
            raise URLError(exc) from exc
        try:
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._discard(key, conn)
            error = URLError(exc)
            # The whole request was written and the server did not answer in time: it may
            # have accepted it. (A connection it closed or reset is told apart: it refused.)
            error.after_send = isinstance(exc, TimeoutError)
            raise error from exc
        if response.will_close:
            self._discard(key, conn)
        else:
            conns[key] = (conn, time.monotonic())
        if not 200 <= response.status < 300:
            raise UrllibHTTPError(
                request.full_url,
                response.status,
                response.reason,
                response.headers,
                io.BytesIO(body),
            )
        return _Response(response.status, response.headers, body)

    def close(self) -> None:
        """Close every connection this transport opened (in any thread)."""
        with self._lock:
            conns, self._all = self._all, set()
        for conn in conns:
            conn.close()


class _KeepAliveClient(python_http_client.Client):
    """The SDK's HTTP client, sending through a ``KeepAliveTransport``.

    The SDK's ``http_request`` builds a urllib opener per call (about half a millisecond of
    CPU, thrown away here) and reads the proxy environment twice; this one builds the same
    request (URL, headers, ``json.dumps`` body, as in python_http_client 3.3) and only falls
    back to the SDK's opener when a proxy applies to the host.
    """

    def __init__(self, *args, transport: KeepAliveTransport, proxied: bool | None = None, **kwargs):
        # Set first: Client.__getattr__ turns unknown attributes into URL segments.
        self._transport = transport
        super().__init__(*args, **kwargs)
        if proxied is None:
            host = urlsplit(self.host).hostname or ""
            scheme = urlsplit(self.host).scheme
            proxied = scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(
                host
            )
        self._proxied = proxied

    def _build_client(self, name=None):
        url_path = self._url_path + [name] if name else self._url_path
        return _KeepAliveClient(
            host=self.host,
            version=self._version,
            request_headers=self.request_headers,
            url_path=url_path,
            append_slash=self.append_slash,
            timeout=self.timeout,
            transport=self._transport,
            proxied=self._proxied,
        )

    def __getattr__(self, name):
        if name in self.methods and not self._proxied:
            return lambda **kwargs: self._request(name.upper(), **kwargs)
        return super().__getattr__(name)

    def _request(
        self,
        method: str,
        request_body=None,
        query_params=None,
        request_headers=None,
        timeout=None,
        **_,
    ):
        if request_headers:
            self._update_headers(request_headers)
        if request_body is None:
            data = None
        elif self.request_headers.get("Content-Type", "application/json") != "application/json":
            data = request_body.encode("utf-8")
        else:
            self.request_headers.setdefault("Content-Type", "application/json")
            data = json.dumps(request_body).encode("utf-8")
        request = urllib.request.Request(
            self._build_url(query_params), headers=self.request_headers, data=data, method=method
        )
        try:
            raw = self._transport.open(request, timeout or self.timeout)
        except UrllibHTTPError as err:  # the same translation as the SDK's _make_request
            exc = handle_error(err)
            exc.__cause__ = None
            raise exc from None
        return Response(raw)


class SendGridProvider:
    name = "sendgrid"

    def __init__(
        self, api_key: str, from_email: str, base_url: str, timeout: float = TIMEOUT_SECONDS
    ):
        self.client = SendGridAPIClient(api_key, host=base_url)
        self.transport = KeepAliveTransport()
        sdk = self.client.client
        # The SDK's HTTP client waits forever by default; child clients inherit this value.
        self.client.client = _KeepAliveClient(
            host=sdk.host,
            request_headers=sdk.request_headers,
            version=sdk._version,
            timeout=timeout,
            transport=self.transport,
        )
        self.from_email = from_email

    def build(self, message: OutgoingMessage) -> Mail:
        dynamic = message.template_id is not None
        mail = Mail(
            from_email=From(message.sender or self.from_email, message.sender_name),
            to_emails=To(message.recipient),
            subject=message.subject,
            # A dynamic template brings its own content; SendGrid renders it from the data.
            plain_text_content=None if dynamic else message.text,
            html_content=None if dynamic else message.html,
        )
        if dynamic:
            mail.template_id = message.template_id
            mail.dynamic_template_data = message.template_data or {}
        args = {
            "message_id": message.message_id,
            "org_id": message.org_id,
            "cart_id": message.cart_id,
            **message.tags,
        }
        mail.custom_arg = [CustomArg(key, str(value)) for key, value in args.items()]
        mail.category = [Category("cart_recovery"), Category(f"step_{message.step_index + 1}")]
        mail.header = Header(MESSAGE_ID_HEADER, message.message_id)
        if message.reply_to:
            mail.reply_to = ReplyTo(message.reply_to)
        if message.unsubscribe_group_id:
            mail.asm = Asm(GroupId(message.unsubscribe_group_id))
        if message.unsubscribe_url:
            # RFC 8058 one-click unsubscribe: mail clients POST to our /u/ link.
            mail.header = Header("List-Unsubscribe", f"<{message.unsubscribe_url}>")
            mail.header = Header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        return mail

    def send(self, message: OutgoingMessage) -> SendResult:
        """POST /v3/mail/send; a 2xx is accepted, its ``X-Message-Id`` is the provider id.

        Safe to call from several threads at once (one connection per thread)."""
        try:
            response = self.client.send(self.build(message))
        except HTTPError as exc:
            status = getattr(exc, "status_code", 0) or 0
            body = getattr(exc, "body", b"") or b""
            if isinstance(body, bytes):
                body = body.decode("utf-8", "replace")
            retryable = status == 429 or status >= 500
            headers = getattr(exc, "headers", None)
            raise ProviderError(
                f"sendgrid {status}: {body[:300]}",
                retryable=retryable,
                retry_after=parse_retry_after(headers.get("Retry-After") if headers else None),
            ) from exc
        except (URLError, TimeoutError, ConnectionError) as exc:
            if getattr(exc, "after_send", False):
                raise ProviderError(
                    f"sendgrid did not answer: {exc}", retryable=False, outcome_unknown=True
                ) from exc
            raise ProviderError(f"sendgrid unreachable: {exc}", retryable=True) from exc
        headers = response.headers
        provider_id = headers.get("X-Message-Id") if headers is not None else None
        return SendResult(provider=self.name, provider_message_id=provider_id)

    def close(self) -> None:
        """Close the kept-alive connections (a later send opens new ones)."""
        self.transport.close()
