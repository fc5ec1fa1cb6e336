"""Headers: request headers no part of the app can store are refused; every response gets
security headers, and CORS for the REST API is limited to the origins an operator configured
(``CORS_ORIGINS``, docs/api.md).

The tracking endpoints answer CORS themselves, per publishable key's allowed origins
(``ingest/snippet.py``), so they are left out of the configured-origins rule.
"""

from __future__ import annotations

import re

from flask import Flask, request
from flask_cors import CORS

from cartrecovery.settings import Settings

from .errors import ApiError
from .snippet import BROWSER_PATHS

# JSON and small server-rendered pages (restore, unsubscribe) only: nothing may be framed,
# no script runs, forms post back to this server. Inline styles are the pages' only styling.
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": _CSP,
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=31536000; includeSubDomains"
_SECURITY_HEADER_ITEMS = tuple(
    (name, name.lower(), value) for name, value in SECURITY_HEADERS.items()
)


def _api_resources() -> str:
    excluded = "|".join(re.escape(p.removeprefix("/api/v1/")) + "$" for p in sorted(BROWSER_PATHS))
    return rf"^/api/v1/(?!{excluded}).*"


def refuse_unstorable_headers():
    """A NUL in a header value is invalid HTTP and cannot reach PostgreSQL (a text value
    never holds one): refused here, once, instead of failing wherever a header is looked up
    (shop domains, event ids, signatures)."""
    for name, value in request.headers.items():
        if "\x00" in value:
            raise ApiError(
                400, "invalid_header", "a header value contains a NUL byte", {"header": name}
            )


def init_app(app: Flask, settings: Settings) -> None:
    https = settings.app_url.startswith("https://")
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_unstorable_headers)

    @app.after_request
    def add_security_headers(response):
        # One pass over the answer's headers (werkzeug's setdefault scans them once per
        # name, a measurable share of a webhook's CPU); a header the view set is kept.
        headers = response.headers
        present = {name.lower() for name in headers.keys()}
        for name, lowered, value in _SECURITY_HEADER_ITEMS:
            if lowered not in present:
                headers.add(name, value)
        if (https or request.is_secure) and "strict-transport-security" not in present:
            headers.add("Strict-Transport-Security", HSTS)
        if request.path.startswith("/api/") and "cache-control" not in present:
            # Answers carry org data under a bearer credential: no shared cache may keep them.
            headers.add("Cache-Control", "no-store")
        return response

    if settings.cors_origins:
        CORS(
            app,
            resources={_api_resources(): {"origins": list(settings.cors_origins)}},
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After", "X-Request-ID"],
            methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            supports_credentials=False,
            max_age=600,
        )
