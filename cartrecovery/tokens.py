"""Short-lived access tokens for users: JWTs signed with ``SECRET_KEY`` (HS256).

A token names one user acting for one org with one role: claims ``sub`` (user id), ``org``,
``role``, ``iat``, ``exp`` and ``jti`` (a token id, for logs and future revocation), and the
audience ``cartrecovery``. It is refused after ``exp``; the API also checks the user's
current role in the org on every request, so a removed member is refused before expiry.

The signing key is derived from ``SECRET_KEY`` for this one purpose, so a token can never be
mistaken for another value signed with the same secret (signed links), and is 32 bytes
whatever the length of ``SECRET_KEY``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from uuid import UUID

import jwt

ALGORITHM = "HS256"
AUDIENCE = "cartrecovery"
DEFAULT_TTL_SECONDS = 15 * 60
_REQUIRED = ["sub", "org", "role", "iat", "exp", "jti", "aud"]


class InvalidToken(Exception):
    """Malformed, forged, expired or for another audience."""


@dataclass(frozen=True)
class Claims:
    user_id: UUID
    org_id: UUID
    role: str
    token_id: str
    issued_at: int
    expires_at: int


def signing_key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), b"cartrecovery access token", hashlib.sha256).digest()


def issue(
    secret_key: str,
    user_id: UUID,
    org_id: UUID,
    role: str,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    now: float | None = None,
) -> str:
    """A signed token for ``user_id`` acting as ``role`` in ``org_id``, valid ``ttl_seconds``."""
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": str(user_id),
        "org": str(org_id),
        "role": role,
        "iat": issued,
        "exp": issued + int(ttl_seconds),
        "jti": uuid.uuid4().hex,
        "aud": AUDIENCE,
    }
    return jwt.encode(claims, signing_key(secret_key), algorithm=ALGORITHM)


def decode(secret_key: str, token: str) -> Claims:
    """The claims of a valid token; :class:`InvalidToken` for anything else."""
    try:
        claims = jwt.decode(
            token,
            signing_key(secret_key),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": _REQUIRED},
        )
        return Claims(
            user_id=UUID(claims["sub"]),
            org_id=UUID(claims["org"]),
            role=str(claims["role"]),
            token_id=str(claims["jti"]),
            issued_at=int(claims["iat"]),
            expires_at=int(claims["exp"]),
        )
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidToken(str(exc)) from None


def looks_like_token(value: str) -> bool:
    """Whether a bearer credential has a JWT's shape (three dot-separated parts); API keys
    (``cr_…``) never do."""
    return value.count(".") == 2
