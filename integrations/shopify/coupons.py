"""Shopify coupons through the GraphQL Admin API: one code discount per coupon
(``discountCodeBasicCreate`` for a percentage or a fixed amount off the order's items,
``discountCodeFreeShippingCreate`` for free shipping), usable once in total and once per
customer, for every buyer, until the coupon expires. One mutation creates the discount and
its code, so nothing is left behind when Shopify refuses it."""

from __future__ import annotations

from decimal import Decimal

import requests

from cartrecovery.http_client import StoreApiError

from ..coupons import CouponSpec, StoreClient, amount, iso
from .api import ShopifyGraphQL, api_version, base_url, legacy_id, user_errors

BASIC_CREATE = """
mutation CreateRecoveryDiscount($discount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $discount) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}
"""

FREE_SHIPPING_CREATE = """
mutation CreateRecoveryFreeShipping($discount: DiscountCodeFreeShippingInput!) {
  discountCodeFreeShippingCreate(freeShippingCodeDiscount: $discount) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}
"""


class ShopifyCoupons(StoreClient):
    platform = "shopify"

    def __init__(
        self, shop_domain: str, credentials: dict, session: requests.Session | None = None
    ):
        super().__init__(base_url(shop_domain, credentials), session)
        self.session.headers.update(
            {
                "X-Shopify-Access-Token": credentials["access_token"],
                "Accept": "application/json",
                "Content-Type": "application/json",
            }
        )
        self.api = ShopifyGraphQL(self.http, api_version(credentials))

    def discount_input(self, spec: CouponSpec) -> dict:
        """The mutation's input: one use in total, once per customer, until expiry."""
        common = {
            "title": spec.code,
            "code": spec.code,
            "startsAt": iso(spec.starts_at),
            "endsAt": iso(spec.expires_at),
            "usageLimit": 1,
            "appliesOncePerCustomer": True,
            "context": {"all": "ALL"},
        }
        if spec.type == "free_shipping":
            return {**common, "destination": {"all": True}}
        if spec.type == "fixed_amount":
            value = {"discountAmount": {"amount": amount(spec.value), "appliesOnEachItem": False}}
        else:  # percentage: Shopify takes a fraction (0.1 = 10 %)
            value = {"percentage": float(Decimal(spec.value) / 100)}
        return {**common, "customerGets": {"value": value, "items": {"all": True}}}

    def create_coupon(self, spec: CouponSpec) -> dict:
        free = spec.type == "free_shipping"
        field = "discountCodeFreeShippingCreate" if free else "discountCodeBasicCreate"
        data = self.api.execute(
            FREE_SHIPPING_CREATE if free else BASIC_CREATE,
            {"discount": self.discount_input(spec)},
            mutation=True,
        )
        payload = data.get(field)
        user_errors(payload, field)
        node = (payload or {}).get("codeDiscountNode") or {}
        if not node.get("id"):
            raise StoreApiError(f"shopify {field}: the answer has no discount id", retryable=True)
        return {"discount_id": node["id"], "discount_legacy_id": legacy_id(node["id"])}


def coupon_client(shop_domain: str, credentials: dict) -> ShopifyCoupons | None:
    """The store's coupon client, or None without an access token."""
    if not credentials.get("access_token"):
        return None
    return ShopifyCoupons(shop_domain, credentials)
