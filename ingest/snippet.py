"""The tracking snippet's side of ingest: the JavaScript files, push subscriptions,
publishable keys, and the browser guard in front of the snippet's endpoints.

- ``GET /static/cartrecovery.js`` and ``/static/cartrecovery-sw.js``: the snippet and its
  service worker (docs/snippet.md).
- ``POST /api/v1/push/subscriptions``: a ``PushSubscription.toJSON()`` from the snippet.
- ``POST/GET /api/v1/publishable-keys``, ``DELETE /api/v1/publishable-keys/<key_id>``: an
  admin creates (key shown once), lists and revokes publishable keys.

The browser guard (``before_app_request``) runs for the endpoints a page calls,
``BROWSER_PATHS``: it answers CORS preflights for origins some publishable key allows and,
when the request carries a publishable key, refuses an ``Origin`` outside that key's list
(403) and counts the request against the key's rate limit per client IP (429 with
``Retry-After``). Requests with other keys pass through unchanged. Publishable keys are
refused on every other endpoint: by ``require_key`` (their role is only in the ``track``
access level) and, for the one other ``track`` endpoint, the batch API, here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric import ec
from flask import Blueprint, current_app, g, request, send_from_directory
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cartrecovery import publishable_keys as keys
from cartrecovery import push_subscriptions
from cartrecovery.canonical import normalize_email
from cartrecovery.rate_limits import RateLimit, hit_rate_limit

from .auth import require_key
from .errors import ApiError, error_response
from .openapi import request_body
from .runtime import runtime

bp = Blueprint("snippet", __name__)

STATIC = Path(__file__).parent / "static"
TRACK_PATH = "/api/v1/carts/track"
PUSH_PATH = "/api/v1/push/subscriptions"
BROWSER_PATHS = frozenset({TRACK_PATH, PUSH_PATH})
# Endpoints whose access level admits publishable keys but which a page never needs.
PUBLISHABLE_REFUSED = frozenset({"/api/v1/events/batch"})
SNIPPET_MAX_AGE = 300  # seconds: a fixed snippet reaches every store within minutes
PREFLIGHT_MAX_AGE = 600
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# --- the JavaScript files --------------------------------------------------------------------


def _script(name: str, max_age: int):
    response = send_from_directory(
        STATIC, name, mimetype="text/javascript", max_age=max_age, conditional=True, etag=True
    )
    response.cache_control.public = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Loaded by other sites' pages (script tags, importScripts), also under COEP.
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@bp.get("/static/cartrecovery.js")
def snippet_script():
    """The tracking snippet stores add to their pages."""
    return _script("cartrecovery.js", SNIPPET_MAX_AGE)


@bp.get("/static/cartrecovery-sw.js")
def service_worker_script():
    """The snippet's service worker: shows pushed notifications, opens the restore link."""
    response = _script("cartrecovery-sw.js", 0)
    response.cache_control.no_cache = True
    # Lets a page on this origin register the worker for the whole site, not just /static/.
    response.headers["Service-Worker-Allowed"] = "/"
    return response


# --- the browser guard -----------------------------------------------------------------------


def _bearer() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def rate_limit() -> RateLimit:
    """The publishable-key rate limit: app config ``PUBLISHABLE_RATE_LIMIT`` requests per
    ``PUBLISHABLE_RATE_WINDOW`` seconds, per key and client IP (default 60 per 60 s)."""
    return RateLimit(
        int(current_app.config.get("PUBLISHABLE_RATE_LIMIT", 60)),
        int(current_app.config.get("PUBLISHABLE_RATE_WINDOW", 60)),
    )


def _preflight():
    origin = request.headers.get("Origin")
    if not keys.origin_allowed_by_any_key(runtime().db, origin):
        raise ApiError(403, "origin_not_allowed", "this origin may not call this endpoint")
    response = current_app.response_class(status=204)
    response.headers.update(
        {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
        }
    )
    response.vary.update(("Origin", "Access-Control-Request-Headers"))
    return response


def _guard_publishable(key: keys.PublishableKey):
    origin = request.headers.get("Origin")
    if origin is not None:
        if not key.allows(origin):
            raise ApiError(
                403,
                "origin_not_allowed",
                "this publishable key may not be used from this origin",
                {"origin": origin},
            )
        g.cors_origin = origin  # the answer, even a 429, must be readable by the page
    retry_after = hit_rate_limit(
        runtime().redis, f"publishable:{key.key_id}:{request.remote_addr}", rate_limit()
    )
    if retry_after is not None:
        response, status = error_response(
            429, "rate_limited", "too many requests", {"retry_after": retry_after}
        )
        response.status_code = status
        response.headers["Retry-After"] = str(retry_after)
        return response
    return None


# token digest → (expires, the publishable key or None for any other token). A key's role and
# origins never change, and require_key still checks every request against the database (a
# revoked key is refused at once), so server-side tracking pays no extra query per call.
_KEY_CACHE: dict[str, tuple[float, keys.PublishableKey | None]] = {}
_KEY_CACHE_SECONDS = 60.0
_KEY_CACHE_MAX = 10_000


def _publishable_key(token: str | None) -> keys.PublishableKey | None:
    if not token:
        return None
    digest = hashlib.sha256(token.encode()).hexdigest()
    now = time.monotonic()
    cached = _KEY_CACHE.get(digest)
    if cached and cached[0] > now:
        return cached[1]
    found, key = keys.lookup_key(runtime().db, token)
    if found is not None:
        # Only live keys are remembered: junk tokens must not fill the cache.
        if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
            _KEY_CACHE.clear()
        _KEY_CACHE[digest] = (now + _KEY_CACHE_SECONDS, key)
    return key


@bp.before_app_request
def guard_browser_requests():
    """CORS, allowed origins and rate limits for publishable keys (see module docstring)."""
    path = request.path
    if path in BROWSER_PATHS:
        if request.method == "OPTIONS":
            return _preflight()
        key = _publishable_key(_bearer())
        # Other keys, and bad ones, go on to the view, whose require_key answers them.
        if key is None:
            return None
        g.publishable_key = key  # limited here per key and IP, not by the REST API's limits
        return _guard_publishable(key)
    if path in PUBLISHABLE_REFUSED and request.method != "OPTIONS":
        if _publishable_key(_bearer()):
            raise ApiError(403, "forbidden", "a publishable key cannot do this")
    return None


@bp.after_app_request
def add_cors_headers(response):
    if request.path in BROWSER_PATHS and request.method != "OPTIONS":
        response.vary.add("Origin")
        origin = g.get("cors_origin")
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
    return response


# --- push subscriptions ----------------------------------------------------------------------


def _b64url(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def _is_local_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost") or "." not in host.strip("[]"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return not address.is_global


class PushKeys(BaseModel):
    model_config = ConfigDict(extra="ignore")

    p256dh: str = Field(min_length=1, max_length=200)
    auth: str = Field(min_length=1, max_length=100)

    @field_validator("p256dh")
    @classmethod
    def _point(cls, value: str) -> str:
        # The browser's P-256 public key, uncompressed: checked to lie on the curve, or every
        # push to it would fail at encryption time.
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64url(value))
        except ValueError as exc:
            raise ValueError("p256dh must be a base64url P-256 public key") from exc
        return value

    @field_validator("auth")
    @classmethod
    def _secret(cls, value: str) -> str:
        if len(_b64url(value)) != 16:
            raise ValueError("auth must be a base64url 16-byte secret")
        return value


class PushSubscriptionJSON(BaseModel):
    """What ``PushSubscription.toJSON()`` gives in the browser."""

    model_config = ConfigDict(extra="ignore")

    endpoint: str = Field(min_length=1, max_length=2048)
    expirationTime: int | None = Field(default=None, ge=0)  # noqa: N815 (the browser's name)
    keys: PushKeys


class PushSubscriptionBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    subscription: PushSubscriptionJSON
    cart_id: str | None = Field(default=None, min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=320)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value and not _EMAIL.match(value):
            raise ValueError("not an email address")
        return normalize_email(value)


def _check_endpoint(endpoint: str) -> None:
    # Anyone with the (public) key can post an endpoint, and the push provider will POST to
    # it: only public https URLs, so the key cannot aim our workers at internal hosts.
    parts = urlsplit(endpoint)
    local_ok = current_app.config.get("PUSH_ALLOW_LOCAL_ENDPOINTS", False)
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("https", "http"):
        raise ApiError(400, "invalid_endpoint", "subscription.endpoint must be an https URL")
    if not local_ok and (parts.scheme != "https" or _is_local_host(host)):
        raise ApiError(400, "invalid_endpoint", "subscription.endpoint must be a public https URL")


@bp.post(PUSH_PATH)
@require_key("track")
@request_body(PushSubscriptionBody, status=201)
def create_push_subscription(body: PushSubscriptionBody):
    """Store a browser's push subscription, linked to the snippet's cart and customer.

    201 the first time an endpoint is seen, 200 when it is refreshed (one row per endpoint).
    """
    sub = body.subscription
    _check_endpoint(sub.endpoint)
    expires = datetime.fromtimestamp(sub.expirationTime / 1000, UTC) if sub.expirationTime else None
    with runtime().db.tenant(g.org_id) as conn:
        subscription_id, created = push_subscriptions.save_subscription(
            conn,
            g.org_id,
            endpoint=sub.endpoint,
            p256dh=sub.keys.p256dh,
            auth=sub.keys.auth,
            expiration_time=expires,
            external_cart_id=body.cart_id,
            email=body.email,
            user_agent=request.user_agent.string[:512] or None,
            key_id=g.api_key.key_id,
        )
    return {
        "subscription_id": str(subscription_id),
        "status": "created" if created else "updated",
    }, 201 if created else 200


# --- publishable keys (admin) ----------------------------------------------------------------


class PublishableKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_origins: list[str] = Field(min_length=1, max_length=keys.MAX_ORIGINS)
    name: str | None = Field(default=None, max_length=200)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return keys.normalize_origins(value)  # ValueError → 400 naming the bad origin


def _key_row(row: dict) -> dict:
    return {
        "key_id": str(row["key_id"]),
        "prefix": row["prefix"],
        "name": row["name"],
        "allowed_origins": list(row["allowed_origins"] or []),
        "created_at": row["created_at"].isoformat(),
        "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
    }


@bp.post("/api/v1/publishable-keys")
@require_key("admin")
@request_body(PublishableKeyCreate, status=201)
def create_key(body: PublishableKeyCreate):
    """Create a publishable key for the tracking snippet; the key is shown only here."""
    db = runtime().db
    key = keys.create_publishable_key(db, g.org_id, body.allowed_origins, body.name)
    created = keys.load_publishable_key(db, key)
    return {
        "key": key,
        "key_id": str(created.key_id),
        "name": body.name,
        "allowed_origins": list(created.allowed_origins),
    }, 201


@bp.get("/api/v1/publishable-keys")
@require_key("admin")
def list_keys():
    """The org's publishable keys with their allowed origins (prefixes only)."""
    return {
        "publishable_keys": [
            _key_row(r) for r in keys.list_publishable_keys(runtime().db, g.org_id)
        ]
    }


@bp.delete("/api/v1/publishable-keys/<key_id>")
@require_key("admin")
def revoke_key(key_id: str):
    """Revoke a publishable key: pages using it stop being tracked at once."""
    try:
        parsed = UUID(key_id)
    except ValueError:
        raise ApiError(404, "not_found", "no such publishable key") from None
    if not keys.revoke_publishable_key(runtime().db, g.org_id, parsed):
        raise ApiError(404, "not_found", "no such publishable key")
    return {"key_id": key_id, "status": "revoked"}
