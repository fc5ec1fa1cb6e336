"""Every changing API request, and every read of personal data, lands in the audit log.

``init_app(app)`` registers an ``after_request`` hook. Recorded: non-GET requests to
``/api/v1/*`` made with a valid key or user token (``g.principal``, set by ``require_key``),
whatever their status (a refused change is worth knowing), and GETs that read personal data
(``AUDITED_READS``: exports, privacy export and data requests, the consent ledger).

Not recorded: the high-volume ingestion endpoints (``NOT_AUDITED``: tracking and push
subscription registration with publishable keys), whose every call is already kept in
``raw.events``; requests that failed authentication (no org to file them under; they are
logged).

Each row is written in a small transaction of its own, after the request's own transaction
committed: a failure to audit is logged loudly (ERROR, with the request) but never turns a
success into a 500. Rows hold no personal data: the action is the route pattern
(``PATCH /api/v1/campaigns/<id>``), the target the resource id, the details the query
parameter *names* and the body's field names, never values.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, request

from cartrecovery import audit

from .runtime import runtime

log = logging.getLogger(__name__)

AUDITED_READS = ("/api/v1/exports", "/api/v1/privacy", "/api/v1/consents")
NOT_AUDITED = ("/api/v1/carts/track", "/api/v1/events/batch", "/api/v1/push/")
_ID_KEYS = (
    "id",
    "subscription_id",
    "campaign_id",
    "connection_id",
    "consent_id",
    "erasure_id",
    "key_id",
    "cart_id",
    "request_id",
)


def _audited(path: str, method: str) -> bool:
    if not path.startswith("/api/v1/") or path.startswith(NOT_AUDITED):
        return False
    if method in ("GET", "HEAD", "OPTIONS"):
        return method == "GET" and path.startswith(AUDITED_READS)
    return True


def _target(response: Response) -> str | None:
    args = request.view_args or {}
    for value in args.values():
        return str(value)
    if response.is_json and response.status_code < 300:
        body = response.get_json(silent=True)
        if isinstance(body, dict):
            for key in _ID_KEYS:
                if body.get(key):
                    return str(body[key])
    return None


def _details() -> dict:
    details: dict = {"path": request.path}
    if request.args:
        details["query"] = sorted(request.args.keys())
    body = request.get_json(silent=True, cache=True) if request.is_json else None
    if isinstance(body, dict):
        details["fields"] = sorted(str(k) for k in body.keys())[:50]
    return details


def _record(response: Response) -> Response:
    who = getattr(g, "principal", None)
    if not _audited(request.path, request.method):
        return response
    if who is None:
        if response.status_code in (401, 403):
            log.info(
                "unauthenticated %s %s → %s", request.method, request.path, response.status_code
            )
        return response
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    try:
        audit.record(
            runtime().db,
            who.org_id,
            who.actor,
            f"{request.method} {rule}",
            _target(response),
            _details(),
            status_code=response.status_code,
            ip=request.remote_addr,
        )
    except Exception:
        # Loud, but the caller's change already committed: answering 500 would only make
        # it retry a change that happened.
        log.exception(
            "AUDIT FAILURE: %s %s by %s (org %s) not recorded",
            request.method,
            request.path,
            who.actor,
            who.org_id,
        )
    return response


def init_app(app: Flask) -> None:
    app.after_request(_record)
