"""WooCommerce coupons: one coupon through REST v3 (HTTP Basic auth with the consumer key
and secret; base ``https://<shop_domain>`` unless ``api_base_url`` says otherwise)."""

from __future__ import annotations

from datetime import UTC

import requests

from cartrecovery.http_client import StoreApiError

from ..coupons import CouponSpec, StoreClient, amount


class WooCommerceCoupons(StoreClient):
    platform = "woocommerce"

    def __init__(
        self, shop_domain: str, credentials: dict, session: requests.Session | None = None
    ):
        super().__init__(credentials.get("api_base_url") or f"https://{shop_domain}", session)
        self.session.auth = (credentials["consumer_key"], credentials["consumer_secret"])

    @staticmethod
    def coupon(spec: CouponSpec) -> dict:
        body = {
            "code": spec.code,
            "discount_type": "percent" if spec.type == "percentage" else "fixed_cart",
            "amount": amount(spec.value) if spec.type != "free_shipping" else "0.00",
            "individual_use": True,
            "usage_limit": 1,
            "usage_limit_per_user": 1,
            # UTC, so the expiry does not depend on the WordPress site's time zone.
            "date_expires_gmt": spec.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "description": "Single-use cart recovery code",
        }
        if spec.type == "free_shipping":
            body["free_shipping"] = True
        return body

    def create_coupon(self, spec: CouponSpec) -> dict:
        created = self.request("POST", "/wp-json/wc/v3/coupons", json=self.coupon(spec))
        if created.get("id") is None:
            raise StoreApiError("woocommerce: coupon answer has no id", retryable=True)
        return {"coupon_id": created["id"]}


def coupon_client(shop_domain: str, credentials: dict) -> WooCommerceCoupons | None:
    """The store's coupon client, or None without the REST consumer key and secret."""
    if not credentials.get("consumer_key") or not credentials.get("consumer_secret"):
        return None
    return WooCommerceCoupons(shop_domain, credentials)
