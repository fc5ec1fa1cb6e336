"""WooCommerce: webhooks (``adapter``), REST client and credentials (``api``), historical
sync (``sync``), coupons (``coupons``) and webhook registration (``webhooks``)."""

from ..platform import Platform
from . import api, coupons, sync, webhooks
from .adapter import WooCommerceAdapter

PLATFORM = Platform(
    name="woocommerce",
    adapter=WooCommerceAdapter,
    credentials=api.CREDENTIALS,
    api_client=api.api_client,
    sync_resources=sync.RESOURCES,
    coupon_client=coupons.coupon_client,
    coupon_credentials=("consumer_key", "consumer_secret"),
    webhook_registrar=webhooks.registrar,
)

__all__ = ["PLATFORM", "WooCommerceAdapter"]
