"""Signed, expiring restore links: ``{APP_URL}/r/{token}``.

A recovery message never links straight to the platform's recovery URL: it links to
``/r/<token>``, which counts the click (the click is what attribution at order time looks for)
and then redirects to the cart. The token names the org, the message and the cart, and is
signed with ``SECRET_KEY`` (itsdangerous, salted so a token of another kind never passes as
one of these). Its lifetime travels inside the token, so links of one message keep the
lifetime they were made with whatever the default is later.

The payload is packed as raw bytes (three UUIDs and the lifetime) rather than JSON: the link
goes into SMS too, where every character counts; a token is about 100 characters.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

SALT = "cartrecovery.restore-link.v1"
UNSUBSCRIBE_SALT = "cartrecovery.unsubscribe-link.v1"
DEFAULT_LIFETIME = timedelta(days=30)
# An unsubscribe link must keep working long after the cart is forgotten.
UNSUBSCRIBE_LIFETIME = timedelta(days=365 * 2)
_PACK = struct.Struct(">16s16s16si")  # org, message, cart, lifetime in seconds (signed)


class InvalidToken(Exception):
    """The token was not made by us (tampered, truncated, other key or salt)."""


class ExpiredToken(InvalidToken):
    """The token is genuine but older than its lifetime."""


@dataclass(frozen=True)
class RestoreToken:
    org_id: UUID
    message_id: UUID
    cart_id: UUID
    issued_at: datetime
    expires_at: datetime


class _Packed:
    """An itsdangerous serializer whose payload is the packed bytes, not JSON."""

    @staticmethod
    def dumps(obj: tuple) -> bytes:
        if not obj:  # itsdangerous probes the serializer with dumps({})
            return b""
        org_id, message_id, cart_id, lifetime = obj
        return _PACK.pack(org_id.bytes, message_id.bytes, cart_id.bytes, lifetime)

    @staticmethod
    def loads(data: bytes) -> tuple:
        org, message, cart, lifetime = _PACK.unpack(data)
        return UUID(bytes=org), UUID(bytes=message), UUID(bytes=cart), lifetime


class _ClockSigner(TimestampSigner):
    def __init__(self, *args, now: datetime | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._now = now

    def get_timestamp(self) -> int:
        # A fixed clock for tests (and for links made "as of" a given time).
        return int((self._now or datetime.now(UTC)).timestamp())


def _signer(
    secret_key: str, now: datetime | None = None, salt: str = SALT
) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        secret_key, salt=salt, serializer=_Packed, signer=_ClockSigner, signer_kwargs={"now": now}
    )


def _seconds(value: timedelta | int | float) -> int:
    return int(value.total_seconds() if isinstance(value, timedelta) else value)


def make_token(
    secret_key: str,
    org_id: UUID | str,
    message_id: UUID | str,
    cart_id: UUID | str,
    expires_in: timedelta | int = DEFAULT_LIFETIME,
    *,
    now: datetime | None = None,
    salt: str = SALT,
) -> str:
    """A URL-safe token for ``/r/<token>`` (``/u/<token>`` with ``UNSUBSCRIBE_SALT``) valid
    for ``expires_in`` (a timedelta or seconds; zero or negative makes a token that is
    already expired, for tests). ``now`` fixes the issue time (default: the current time)."""
    payload = (UUID(str(org_id)), UUID(str(message_id)), UUID(str(cart_id)), _seconds(expires_in))
    token = _signer(secret_key, now, salt).dumps(payload)
    return token.decode() if isinstance(token, bytes) else token


def read_token(
    secret_key: str, token: str, *, now: datetime | None = None, salt: str = SALT
) -> RestoreToken:
    """The content of a token made by :func:`make_token` with ``secret_key``.

    Raises ExpiredToken when it is past its lifetime (at ``now``, default the current time),
    InvalidToken for anything else that is not a genuine token. Never anything else.
    """
    signer = _signer(secret_key, salt=salt)
    try:
        (org_id, message_id, cart_id, lifetime), issued = signer.loads(token, return_timestamp=True)
    except SignatureExpired as exc:  # not raised without max_age, kept for safety
        raise ExpiredToken("restore link expired") from exc
    except (BadData, struct.error, ValueError, TypeError) as exc:
        raise InvalidToken("restore link is not valid") from exc
    expires_at = issued + timedelta(seconds=lifetime)
    current = now or datetime.now(UTC)
    if lifetime <= 0 or current > expires_at:
        raise ExpiredToken("restore link expired")
    return RestoreToken(org_id, message_id, cart_id, issued, expires_at)


def restore_url(
    app_url: str,
    secret_key: str,
    org_id: UUID | str,
    message_id: UUID | str,
    cart_id: UUID | str,
    expires_in: timedelta | int = DEFAULT_LIFETIME,
) -> str:
    """``{app_url}/r/{token}``: the link a message carries instead of the platform's URL."""
    token = make_token(secret_key, org_id, message_id, cart_id, expires_in)
    return f"{app_url.rstrip('/')}/r/{token}"


def unsubscribe_url(
    app_url: str,
    secret_key: str,
    org_id: UUID | str,
    message_id: UUID | str,
    cart_id: UUID | str,
) -> str:
    """``{app_url}/u/{token}``: the message's own unsubscribe link (a different salt, so a
    restore token can never unsubscribe anyone, and a longer life)."""
    token = make_token(
        secret_key, org_id, message_id, cart_id, UNSUBSCRIBE_LIFETIME, salt=UNSUBSCRIBE_SALT
    )
    return f"{app_url.rstrip('/')}/u/{token}"
