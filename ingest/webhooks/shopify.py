"""Shopify webhook routes: one URL per topic (``/api/webhooks/shopify/checkout-create`` …)
and a single endpoint (``/api/webhooks/shopify``) that reads the topic from
``X-Shopify-Topic``. Everything else is the adapter's (``integrations.shopify``) and the
shared dispatcher's: locate by shop domain (404), verify the HMAC (401), parse (400), then
one tenant transaction that claims the delivery, applies it and keeps the raw event.
"""

from __future__ import annotations

from flask import Blueprint

from integrations.shopify.adapter import TOPIC_PATHS, ShopifyAdapter

from .dispatch import inbound_request, receive

bp = Blueprint("shopify", __name__)

_adapter = ShopifyAdapter()


def _route(path: str, topic: str | None) -> None:
    def view():
        return receive(_adapter, inbound_request(topic))

    view.__doc__ = (
        f"Shopify webhook `{topic}` (HMAC verified, store by shop domain)."
        if topic
        else "Shopify webhook, any topic (named by X-Shopify-Topic)."
    )
    endpoint = path.replace("-", "_") if path else "any_topic"
    rule = f"/api/webhooks/shopify/{path}" if path else "/api/webhooks/shopify"
    bp.add_url_rule(rule, endpoint=endpoint, view_func=view, methods=["POST"])


for _topic, _path in TOPIC_PATHS.items():
    _route(_path, _topic)
_route("", None)
