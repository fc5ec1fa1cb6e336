"""BigCommerce coupons: one coupon through the v2 API (``X-Auth-Token``; base
``https://api.bigcommerce.com`` unless ``api_base_url`` says otherwise)."""

from __future__ import annotations

from datetime import UTC
from email.utils import format_datetime

import requests

from cartrecovery.http_client import StoreApiError

from ..coupons import CouponSpec, StoreClient, amount


class BigCommerceCoupons(StoreClient):
    platform = "bigcommerce"

    def __init__(
        self, shop_domain: str, credentials: dict, session: requests.Session | None = None
    ):
        super().__init__(credentials.get("api_base_url") or "https://api.bigcommerce.com", session)
        self.store_hash = credentials.get("store_hash") or shop_domain
        self.session.headers.update(
            {"X-Auth-Token": credentials["access_token"], "Accept": "application/json"}
        )

    @staticmethod
    def coupon(spec: CouponSpec) -> dict:
        kind = {
            "percentage": "percentage_discount",
            "fixed_amount": "per_total_discount",
            "free_shipping": "free_shipping",
        }[spec.type]
        return {
            "name": spec.code,
            "code": spec.code,
            "type": kind,
            "amount": amount(spec.value) if spec.type != "free_shipping" else "0.00",
            "enabled": True,
            # Category 0 stands for the whole catalogue in the v2 coupons API.
            "applies_to": {"entity": "categories", "ids": [0]},
            "expires": format_datetime(spec.expires_at.astimezone(UTC)),
            "max_uses": 1,
            "max_uses_per_customer": 1,
        }

    def create_coupon(self, spec: CouponSpec) -> dict:
        created = self.request(
            "POST", f"/stores/{self.store_hash}/v2/coupons", json=self.coupon(spec)
        )
        if created.get("id") is None:
            raise StoreApiError("bigcommerce: coupon answer has no id", retryable=True)
        return {"coupon_id": created["id"]}


def coupon_client(shop_domain: str, credentials: dict) -> BigCommerceCoupons | None:
    """The store's coupon client, or None without an access token."""
    if not credentials.get("access_token"):
        return None
    return BigCommerceCoupons(shop_domain, credentials)
