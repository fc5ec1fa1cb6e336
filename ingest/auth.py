"""Bearer authentication, by API key or by a user's access token (JWT); the org comes from
the key or the token, never from the request.

Both carry a role, and one table decides what each role may do
(:func:`cartrecovery.access.allows`): a viewer's token is refused where a read key is. A
token is checked against the user's *current* membership on every request (removed: 401;
role changed: the new role applies). Tokens are for people: the ``track`` endpoints (carts
and events reported by stores and storefronts) take API keys only.

High-volume endpoints (``require_key(..., cached=True)``: the tracking API, campaign
performance) may take the key from a per-process cache (``KEY_CACHE_SECONDS``) instead of a
transaction of its own. Their view then opens its transaction with
:func:`tenant_transaction`, which confirms the key with its first statement (a revoked key:
401 and everything rolled back); a key the view did not confirm that way (an error, nothing
to write) is looked up again before answering. So a revoked key is refused at once, as
without the cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from uuid import UUID

from flask import g, request

from cartrecovery import access, tokens, users
from cartrecovery.db import Query
from cartrecovery.tenancy import API_KEY_LIVE, verify_api_key

from .errors import ApiError
from .runtime import runtime


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``actor`` is ``api_key:<key id>`` or ``user:<user id>`` (the audit
    log's actor), ``role`` a key role or, when ``user``, a user role."""

    org_id: UUID
    role: str
    actor: str
    user: bool = False


# How long a process may reuse a key it read (see the module docstring: each use is still
# confirmed against the database).
KEY_CACHE_SECONDS = 60.0


def _invalid() -> ApiError:
    return ApiError(401, "unauthorized", "invalid API key")


def require_key(level: str, cached: bool = False):
    """Let the view run only for a key or token whose role grants access ``level`` (401 for
    missing or invalid credentials, 403 for a role that may not); sets ``g.org_id`` and
    ``g.principal`` (and ``g.api_key`` for keys)."""
    if level not in access.LEVELS:
        raise ValueError(f"access level must be one of {access.LEVELS}")

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiError(401, "unauthorized", "missing bearer API key or token")
            token = token.strip()
            if tokens.looks_like_token(token):
                _authenticate_user(token, level)
                return view(*args, **kwargs)
            key = verify_api_key(runtime().db, token, max_age=KEY_CACHE_SECONDS if cached else 0.0)
            if key is None:
                raise _invalid()
            if not access.allows(key.role, level):
                raise ApiError(403, "forbidden", f"a {key.role} key cannot do this")
            g.org_id = key.org_id
            g.api_key = key
            g.principal = Principal(key.org_id, key.role, f"api_key:{key.key_id}")
            g.key_unconfirmed = cached
            if not cached:
                return view(*args, **kwargs)
            try:
                response = view(*args, **kwargs)
            except Exception:
                _confirm(token)
                raise
            _confirm(token)
            return response

        return wrapper

    return decorator


def _authenticate_user(token: str, level: str) -> None:
    rt = runtime()
    try:
        claims = tokens.decode(rt.settings.secret_key, token)
    except tokens.InvalidToken:
        raise ApiError(401, "unauthorized", "invalid or expired token") from None
    # The membership as it is now, not as it was when the token was issued.
    role = users.role_in(rt.db, claims.org_id, claims.user_id)
    if role is None:
        raise ApiError(401, "unauthorized", "invalid or expired token")
    if level == "track":
        raise ApiError(403, "forbidden", "this endpoint takes an API key, not a user token")
    if not access.allows(role, level, user=True):
        raise ApiError(403, "forbidden", f"a {role} cannot do this")
    g.org_id = claims.org_id
    g.principal = Principal(claims.org_id, role, f"user:{claims.user_id}", user=True)
    g.key_unconfirmed = False


def _confirm(token: str) -> None:
    # The view ended without confirming the cached key in its transaction: read it again.
    if g.pop("key_unconfirmed", False) and verify_api_key(runtime().db, token) is None:
        raise _invalid()


@contextmanager
def tenant_transaction(*queries: Query) -> Iterator[tuple]:
    """``Database.tenant_with`` for the request's org (``g.org_id``): yields (connection,
    rows of ``queries``); confirms a cached key first (401 if revoked, nothing kept)."""
    checks = (
        ((API_KEY_LIVE, (g.api_key.org_id, g.api_key.key_id)),) if g.get("key_unconfirmed") else ()
    )
    with runtime().db.tenant_with(g.org_id, *checks, *queries) as (conn, rows):
        if checks:
            g.key_unconfirmed = False
            if not rows[0]:
                raise _invalid()  # rolls the transaction back
        yield conn, rows[len(checks) :]
