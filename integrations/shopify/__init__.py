"""Shopify: webhooks (``adapter``), GraphQL Admin API client and credentials (``api``),
historical sync (``sync``), coupons (``coupons``), webhook subscriptions (``webhooks``), the
OAuth install (``oauth``) and the app's ``shopify.app.toml`` (``app_toml``)."""

from ..platform import Platform
from . import api, coupons, sync, webhooks
from .adapter import ShopifyAdapter
from .api import SHOPIFY_API_VERSION

PLATFORM = Platform(
    name="shopify",
    adapter=ShopifyAdapter,
    credentials=api.CREDENTIALS,
    api_client=api.api_client,
    sync_resources=sync.RESOURCES,
    coupon_client=coupons.coupon_client,
    coupon_credentials=("access_token",),
    webhook_registrar=webhooks.registrar,
)

__all__ = ["PLATFORM", "SHOPIFY_API_VERSION", "ShopifyAdapter"]
