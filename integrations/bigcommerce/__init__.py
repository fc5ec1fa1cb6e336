"""BigCommerce: webhooks and the store API the adapter reads carts from (``adapter``), the
sync client and credentials (``api``), historical sync (``sync``), coupons (``coupons``) and
webhook registration through ``/v3/hooks`` (``webhooks``)."""

from ..platform import Platform
from . import api, coupons, sync, webhooks
from .adapter import BigCommerceAdapter

PLATFORM = Platform(
    name="bigcommerce",
    adapter=BigCommerceAdapter,
    credentials=api.CREDENTIALS,
    api_client=api.api_client,
    sync_resources=sync.RESOURCES,
    coupon_client=coupons.coupon_client,
    coupon_credentials=("access_token",),
    webhook_registrar=webhooks.registrar,
)

__all__ = ["PLATFORM", "BigCommerceAdapter"]
