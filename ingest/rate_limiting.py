"""Rate limits on the REST API (``/api/v1``): per credential (API key or access token) and
per client IP, counted in Redis (``cartrecovery/rate_limits.py``), answered with 429 and
``Retry-After``.

A credential's bucket is named by a digest of the bearer value, so it is counted before (and
whether or not) authentication succeeds: guessing keys spends the guesser's IP bucket, and a
valid key is limited without a database lookup. Publishable keys are left to their own limit
per key and client IP (``ingest/snippet.py``): one storefront key serves every visitor.
Webhooks are not limited here: platforms sign them and post from many addresses.

Limits come from ``API_RATE_LIMIT_PER_KEY`` and ``API_RATE_LIMIT_PER_IP`` (docs/api.md). The
client IP is the connection's address: behind a load balancer, run the server with a trusted
proxy count (``FORWARDED_ALLOW_IPS`` for gunicorn) so it is the client's, never a header any
caller can set.
"""

from __future__ import annotations

import hashlib

from flask import Flask, g, request

from cartrecovery.rate_limits import RateLimit, hit_rate_limit

from .errors import error_response
from .runtime import runtime

API_PREFIX = "/api/v1/"


def _credential() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _limited(bucket: str, rate: RateLimit, scope: str):
    retry_after = hit_rate_limit(runtime().redis, bucket, rate)
    if retry_after is None:
        return None
    response, status = error_response(
        429,
        "rate_limited",
        f"too many requests for this {scope}",
        {"retry_after": retry_after, "scope": scope},
    )
    response.status_code = status
    response.headers["Retry-After"] = str(retry_after)
    return response


def limit_api_request():
    """Count the request against its IP's and its credential's buckets; a 429 if either is
    used up (the IP's is checked first, so an IP over its limit spends no key's budget)."""
    if not request.path.startswith(API_PREFIX) or request.method == "OPTIONS":
        return None
    settings = runtime().settings
    per_ip = settings.api_rate_limit_per_ip
    if per_ip is not None:
        refused = _limited(f"api:ip:{request.remote_addr}", per_ip, "client IP")
        if refused is not None:
            return refused
    per_key = settings.api_rate_limit_per_key
    credential = _credential()
    if per_key is not None and credential and not g.get("publishable_key"):
        digest = hashlib.sha256(credential.encode()).hexdigest()[:32]
        return _limited(f"api:key:{digest}", per_key, "API key")
    return None


def init_app(app: Flask) -> None:
    app.before_request(limit_api_request)
