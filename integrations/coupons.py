"""Small REST clients that create single-use discount codes in a store: what they share
(the spec of a coupon, the client base class); each platform's own client lives in its
package (``integrations/<platform>/coupons.py``) and is named by its ``Platform``:

- Shopify GraphQL Admin API: one `discountCodeBasicCreate` (or free-shipping) mutation;
- WooCommerce REST v3: one coupon; HTTP Basic auth with the consumer key and secret;
- BigCommerce v2: one coupon; ``X-Auth-Token``.

Credentials come from the store connection (``tenancy.Connection.credentials``); a
platform's ``coupon_client`` returns None when the keys it needs are missing.
``api_base_url`` in the credentials replaces the base (tests, proxies, staging stores).
Calls go through the shared ``cartrecovery.http_client.StoreHttpClient`` (timeouts; a 429
with a short ``Retry-After`` is waited out a couple of times); anything else that fails
raises its :class:`StoreApiError`, saying whether trying again later could help.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import requests

from cartrecovery.http_client import RETRY_STATUSES, StoreApiError, StoreHttpClient

TIMEOUT = 10.0
MAX_RETRIES = 2
MAX_RETRY_AFTER = 10.0  # seconds; longer waits go back to the job's own retry schedule


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


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


def amount(value: Decimal) -> str:
    return f"{Decimal(value):.2f}"


def coupon_client(platform: str, shop_domain: str, credentials: dict | None) -> StoreClient | None:
    """The client that creates coupons in this store, or None: the platform has no coupon
    API here (generic, Magento, plug-ins that declare none) or the connection lacks the
    credentials it needs."""
    from .registry import platform as find_platform

    found = find_platform(platform)
    if found is None or found.coupon_client is None or not isinstance(credentials, dict):
        return None
    return found.coupon_client(shop_domain, credentials)
