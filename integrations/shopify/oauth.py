"""Shopify's OAuth authorization-code grant for an app install (docs/adapters.md, "Shopify"):
the authorize URL, the HMAC Shopify puts on the callback's query, and the server-to-server
exchange of the code for an **offline** access token (no ``grant_options[]=per-user``: the
token outlives the merchant's session, as background sync and coupons need)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

import requests

from cartrecovery.http_client import StoreApiError, StoreHttpClient

from .api import SCOPES, valid_shop_domain

TIMEOUT = 10


@dataclass(frozen=True)
class AccessToken:
    access_token: str
    scope: str

    def __repr__(self) -> str:  # never in logs or tracebacks
        return f"AccessToken(scope={self.scope!r}, access_token=<hidden>)"


def authorize_url(shop: str, api_key: str, redirect_uri: str, state: str) -> str:
    """Where the merchant approves the scopes (Shopify then calls ``redirect_uri``)."""
    if not valid_shop_domain(shop):
        raise ValueError("shop must be a <name>.myshopify.com domain")
    query = urlencode(
        {
            "client_id": api_key,
            "scope": ",".join(SCOPES),
            "redirect_uri": redirect_uri,
            "state": state,
        }
    )
    return f"https://{shop}/admin/oauth/authorize?{query}"


def query_hmac(params: Iterable[tuple[str, str]], secret: str) -> str:
    """Shopify's signature of a query: every parameter but ``hmac`` (and the legacy
    ``signature``), sorted by name, as ``name=value`` joined by ``&``, HMAC-SHA256 hex with
    the app's client secret."""
    pairs = sorted((k, v) for k, v in params if k not in ("hmac", "signature"))
    message = "&".join(f"{k}={v}" for k, v in pairs)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify_query(params: Iterable[tuple[str, str]], secret: str) -> bool:
    """The query carries a valid ``hmac`` made with ``secret`` (constant-time compare)."""
    params = list(params)
    given = next((v for k, v in params if k == "hmac"), None)
    if not given or not secret:
        return False
    return hmac.compare_digest(query_hmac(params, secret), given.strip().lower())


def exchange_code(
    shop: str, code: str, api_key: str, api_secret: str, base_url: str | None = None
) -> AccessToken:
    """``POST https://{shop}/admin/oauth/access_token`` (``base_url`` replaces the base:
    tests, proxies); StoreApiError when Shopify does not give a token."""
    client = StoreHttpClient(
        base_url or f"https://{shop}",
        {"Accept": "application/json"},
        timeout=TIMEOUT,
        max_attempts=1,  # a code is single use: never sent twice
    )
    try:
        response = client.post(
            "/admin/oauth/access_token",
            json={"client_id": api_key, "client_secret": api_secret, "code": code},
        )
    except requests.RequestException as exc:
        raise StoreApiError(
            f"shopify token exchange: {type(exc).__name__}", retryable=True
        ) from None
    finally:
        client.close()
    if response.status_code != 200:
        # The body is not logged: it may echo what was sent.
        raise StoreApiError(
            f"shopify token exchange answered {response.status_code}", response.status_code
        )
    try:
        body = response.json()
    except ValueError:
        raise StoreApiError("shopify token exchange: the answer is not JSON") from None
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise StoreApiError("shopify token exchange: no access_token in the answer")
    return AccessToken(token, str(body.get("scope") or ""))


# --- which org an install joins ----------------------------------------------------------------
# An install started from our side (`cartrecovery shopify install-link`, or a signed-in page)
# carries a signed, short-lived org hint: the shop joins that org. See docs/adapters.md.

ORG_HINT_SALT = "cartrecovery.shopify-install-org.v1"
ORG_HINT_MAX_AGE = 24 * 3600


def org_hint(secret_key: str, org_id) -> str:
    from itsdangerous import URLSafeTimedSerializer

    return URLSafeTimedSerializer(secret_key, salt=ORG_HINT_SALT).dumps(str(org_id))


INSTALL_PATH = "/auth/shopify/install"


def install_link(app_url: str, secret_key: str, org_id, shop: str) -> str:
    """The install URL that connects ``shop`` to ``org_id`` (valid ``ORG_HINT_MAX_AGE``):
    what ``cartrecovery shopify install-link`` prints and the dashboard's Stores page shows.
    ValueError for a shop domain that is not ``<name>.myshopify.com``."""
    shop = shop.strip().lower()
    if not valid_shop_domain(shop):
        raise ValueError("shop must be a <name>.myshopify.com domain")
    query = urlencode({"shop": shop, "org": org_hint(secret_key, org_id)})
    return f"{app_url.rstrip('/')}{INSTALL_PATH}?{query}"


def read_org_hint(secret_key: str, token: str) -> str | None:
    """The org id of a genuine, unexpired hint, else None."""
    from itsdangerous import BadData, URLSafeTimedSerializer

    try:
        value = URLSafeTimedSerializer(secret_key, salt=ORG_HINT_SALT).loads(
            token, max_age=ORG_HINT_MAX_AGE
        )
    except BadData:
        return None
    return value if isinstance(value, str) else None
