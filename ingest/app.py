"""Flask application factory: ingest (webhooks, tracking) and the REST API."""

from __future__ import annotations

from flask import Flask, request

from cartrecovery.runtime import Runtime
from cartrecovery.settings import Settings

from .body_deadline import TIMED_OUT, BodyDeadline
from .errors import ApiError, register_error_handlers


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["PUSH_ALLOW_LOCAL_ENDPOINTS"] = settings.push_allow_local_endpoints
    app.json.sort_keys = False
    app.extensions["cartrecovery"] = Runtime(settings)
    register_error_handlers(app)

    from . import (
        audit,
        health,
        http_headers,
        metrics,
        openapi,
        rate_limiting,
        request_ids,
        restore,
        shopify_install,
        snippet,
        tracking,
        unsubscribe,
    )
    from .api import (
        analytics,
        api_keys,
        campaigns,
        carts,
        connections,
        consents,
        experiments,
        exports,
        org_settings,
        preview,
        privacy,
        tokens,
        webhook_subscriptions,
    )
    from .webhooks import sendgrid, shopify, stores, twilio

    for module in (
        health,
        metrics,
        openapi,
        tracking,
        snippet,
        restore,
        unsubscribe,
        shopify,
        shopify_install,
        stores,
        sendgrid,
        twilio,
        org_settings,
        campaigns,
        preview,
        carts,
        analytics,
        experiments,
        exports,
        connections,
        consents,
        privacy,
        tokens,
        webhook_subscriptions,
        api_keys,
    ):
        app.register_blueprint(module.bp)
    audit.init_app(app)
    metrics.init_app(app)
    rate_limiting.init_app(app)
    http_headers.init_app(app, settings)
    app.before_request_funcs.setdefault(None, []).insert(0, _refuse_timed_out_body)
    app.wsgi_app = BodyDeadline(
        app.wsgi_app, settings.body_timeout_seconds, settings.max_body_bytes
    )
    request_ids.init_app(app)  # last: it binds the id before everything else runs
    return app


def _refuse_timed_out_body() -> None:
    if request.environ.get(TIMED_OUT):
        raise ApiError(
            408, "request_timeout", "the request body did not arrive in time; send it again"
        )
