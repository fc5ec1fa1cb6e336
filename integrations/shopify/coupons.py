"""Shopify coupons: a price rule (the discount), then one discount code under it, through
the Admin REST API (``X-Shopify-Access-Token``)."""

from __future__ import annotations

import requests

from cartrecovery.http_client import StoreApiError

from ..coupons import CouponSpec, StoreClient, amount, iso
from .api import api_version, base_url


class ShopifyCoupons(StoreClient):
    platform = "shopify"

    def __init__(
        self, shop_domain: str, credentials: dict, session: requests.Session | None = None
    ):
        super().__init__(base_url(shop_domain, credentials), session)
        self.version = api_version(credentials)
        self.session.headers.update(
            {"X-Shopify-Access-Token": credentials["access_token"], "Accept": "application/json"}
        )

    def price_rule(self, spec: CouponSpec) -> dict:
        """The ``price_rule`` object: one use in total, once per customer, until expiry."""
        rule = {
            "title": spec.code,
            "target_type": "line_item",
            "target_selection": "all",
            "allocation_method": "across",
            "value_type": "percentage",
            "value": f"-{amount(spec.value)}",
            "customer_selection": "all",
            "once_per_customer": True,
            "usage_limit": 1,
            "starts_at": iso(spec.starts_at),
            "ends_at": iso(spec.expires_at),
        }
        if spec.type == "fixed_amount":
            rule["value_type"] = "fixed_amount"
        elif spec.type == "free_shipping":
            rule.update(target_type="shipping_line", allocation_method="each", value="-100.00")
        return rule

    def create_coupon(self, spec: CouponSpec) -> dict:
        prefix = f"/admin/api/{self.version}"
        rule = self.request(
            "POST", f"{prefix}/price_rules.json", json={"price_rule": self.price_rule(spec)}
        )
        rule_id = (rule.get("price_rule") or {}).get("id")
        if rule_id is None:
            raise StoreApiError("shopify: price rule answer has no id", retryable=True)
        try:
            code = self.request(
                "POST",
                f"{prefix}/price_rules/{rule_id}/discount_codes.json",
                json={"discount_code": {"code": spec.code}},
            )
        except StoreApiError:
            # A price rule without its code is useless; remove it (best effort) before the
            # job retries and makes a new one.
            try:
                self.request("DELETE", f"{prefix}/price_rules/{rule_id}.json")
            except StoreApiError:
                pass
            raise
        return {
            "price_rule_id": rule_id,
            "discount_code_id": (code.get("discount_code") or {}).get("id"),
        }


def coupon_client(shop_domain: str, credentials: dict) -> ShopifyCoupons | None:
    """The store's coupon client, or None without an access token."""
    if not credentials.get("access_token"):
        return None
    return ShopifyCoupons(shop_domain, credentials)
