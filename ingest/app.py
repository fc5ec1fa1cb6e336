"""Flask application factory: ingest (webhooks, tracking) and the REST API."""

from __future__ import annotations

from flask import Flask

from cartrecovery.runtime import Runtime
from cartrecovery.settings import Settings

from .errors import register_error_handlers


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions["cartrecovery"] = Runtime(settings)
    register_error_handlers(app)

    from . import health, openapi, tracking
    from .api import analytics, campaigns, carts, org_settings
    from .webhooks import sendgrid, shopify

    for module in (health, openapi, tracking, shopify, sendgrid,
                   org_settings, campaigns, carts, analytics):
        app.register_blueprint(module.bp)
    return app
