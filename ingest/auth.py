"""Bearer API key authentication; the org comes from the key, never from the request.

High-volume endpoints (``require_key(..., cached=True)``: the tracking API) may take the key
from a per-process cache (``KEY_CACHE_SECONDS``) instead of a transaction of its own. Their
view then opens its transaction with :func:`tenant_transaction`, which confirms the key with
its first statement (a revoked key: 401 and everything rolled back); a key the view did not
confirm that way (an error, nothing to write) is looked up again before answering. So a
revoked key is refused at once, as without the cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import wraps

from flask import g, request

from cartrecovery.db import Query
from cartrecovery.tenancy import API_KEY_LIVE, verify_api_key

from .errors import ApiError
from .runtime import runtime

# Which key roles may call an endpoint that needs a given access level.
ACCESS = {
    "read": {"admin", "write", "read"},
    "write": {"admin", "write"},
    "track": {"admin", "write", "publishable"},
    "admin": {"admin"},
}

# How long a process may reuse a key it read (see the module docstring: each use is still
# confirmed against the database).
KEY_CACHE_SECONDS = 60.0


def _invalid() -> ApiError:
    return ApiError(401, "unauthorized", "invalid API key")


def require_key(access: str, cached: bool = False):
    allowed = ACCESS[access]

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiError(401, "unauthorized", "missing bearer API key")
            token = token.strip()
            key = verify_api_key(runtime().db, token, max_age=KEY_CACHE_SECONDS if cached else 0.0)
            if key is None:
                raise _invalid()
            if key.role not in allowed:
                raise ApiError(403, "forbidden", f"a {key.role} key cannot do this")
            g.org_id = key.org_id
            g.api_key = key
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
