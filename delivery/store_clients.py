"""Small REST clients that create single-use discount codes in a store, one per platform.

- Shopify Admin REST: a price rule (the discount), then one discount code under it;
  ``X-Shopify-Access-Token``; base ``https://{shop_domain}``.
- WooCommerce REST v3: one coupon; HTTP Basic auth with the consumer key and secret;
  base ``https://{shop_domain}``.
- BigCommerce v2: one coupon; ``X-Auth-Token``; base ``https://api.bigcommerce.com``.

Credentials come from the store connection (``tenancy.Connection.credentials``); the keys
each platform needs are listed in :data:`REQUIRED`. ``api_base_url`` in the credentials
replaces the base (tests, proxies, staging stores). Calls go through the shared
``cartrecovery.http_client.StoreHttpClient`` (timeouts; a 429 with a short ``Retry-After`` is
waited out a couple of times); anything else that fails raises its :class:`StoreApiError`,
saying whether trying again later could help.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import requests

from cartrecovery.http_client import RETRY_STATUSES, StoreApiError, StoreHttpClient

TIMEOUT = 10.0
MAX_RETRIES = 2
MAX_RETRY_AFTER = 10.0  # seconds; longer waits go back to the job's own retry schedule
SHOPIFY_API_VERSION = "2025-07"
REQUIRED = {
    "shopify": ("access_token",),
    "woocommerce": ("consumer_key", "consumer_secret"),
    "bigcommerce": ("access_token",),
}


@dataclass(frozen=True)
class CouponSpec:
    """What to create: ``type`` is percentage, fixed_amount or free_shipping; ``value`` the
    percent or the amount in ``currency``."""

    code: str
    type: str
    value: Decimal
    currency: str | None
    starts_at: datetime
    expires_at: datetime


class StoreClient(ABC):
    """The shared store API client (timeouts, ``Retry-After`` backoff) with JSON answers and
    errors that name the platform. Creating calls (POST) are not retried on a 5xx or a lost
    connection: the store may have created the coupon; the job's own retry decides."""

    platform = "store"

    def __init__(self, base_url: str, session: requests.Session | None = None):
        self.http = StoreHttpClient(
            base_url,
            timeout=TIMEOUT,
            max_attempts=MAX_RETRIES + 1,
            max_retry_after=MAX_RETRY_AFTER,
            session=session,
        )
        # Subclasses put their credentials on the session (headers or basic auth).
        self.session = self.http.session

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request and return its JSON body; raise StoreApiError on failure."""
        where = f"{self.platform} {method} {path}"
        try:
            response = self.http.request(method, path, **kwargs)
        except requests.RequestException as exc:
            raise StoreApiError(f"{where}: {exc}", retryable=True) from exc
        if response.status_code >= 400:
            raise StoreApiError(
                f"{where}: HTTP {response.status_code} {response.text[:300]}",
                response.status_code,
                retryable=response.status_code in (408, 409)
                or response.status_code in RETRY_STATUSES,
            )
        try:
            return response.json() if response.content else {}
        except ValueError as exc:
            raise StoreApiError(
                f"{where}: answer is not JSON", response.status_code, retryable=True
            ) from exc

    @abstractmethod
    def create_coupon(self, spec: CouponSpec) -> dict:
        """Create ``spec`` in the store; return the store's ids for it."""


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _amount(value: Decimal) -> str:
    return f"{Decimal(value):.2f}"


class ShopifyCoupons(StoreClient):
    platform = "shopify"

    def __init__(
        self, shop_domain: str, credentials: dict, session: requests.Session | None = None
    ):
        super().__init__(credentials.get("api_base_url") or f"https://{shop_domain}", session)
        self.version = credentials.get("api_version") or SHOPIFY_API_VERSION
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
            "value": f"-{_amount(spec.value)}",
            "customer_selection": "all",
            "once_per_customer": True,
            "usage_limit": 1,
            "starts_at": _iso(spec.starts_at),
            "ends_at": _iso(spec.expires_at),
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
            "amount": _amount(spec.value) if spec.type != "free_shipping" else "0.00",
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
            "amount": _amount(spec.value) if spec.type != "free_shipping" else "0.00",
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


CLIENTS: dict[str, type[StoreClient]] = {
    "shopify": ShopifyCoupons,
    "woocommerce": WooCommerceCoupons,
    "bigcommerce": BigCommerceCoupons,
}


def coupon_client(platform: str, shop_domain: str, credentials: dict | None) -> StoreClient | None:
    """The client that creates coupons in this store, or None: the platform has no coupon
    API here (custom, generic, Magento) or the connection lacks the credentials it needs."""
    cls = CLIENTS.get(platform)
    if cls is None or not isinstance(credentials, dict):
        return None
    if not all(credentials.get(k) for k in REQUIRED[platform]):
        return None
    return cls(shop_domain, credentials)
