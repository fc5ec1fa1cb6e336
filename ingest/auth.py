"""Bearer API key authentication; the org comes from the key, never from the request."""

from __future__ import annotations

from functools import wraps

from flask import g, request

from cartrecovery.tenancy import verify_api_key

from .errors import ApiError
from .runtime import runtime

# Which key roles may call an endpoint that needs a given access level.
ACCESS = {
    "read": {"admin", "write", "read"},
    "write": {"admin", "write"},
    "track": {"admin", "write", "publishable"},
    "admin": {"admin"},
}


def require_key(access: str):
    allowed = ACCESS[access]

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiError(401, "unauthorized", "missing bearer API key")
            key = verify_api_key(runtime().db, token.strip())
            if key is None:
                raise ApiError(401, "unauthorized", "invalid API key")
            if key.role not in allowed:
                raise ApiError(403, "forbidden", f"a {key.role} key cannot do this")
            g.org_id = key.org_id
            g.api_key = key
            return view(*args, **kwargs)

        return wrapper

    return decorator
