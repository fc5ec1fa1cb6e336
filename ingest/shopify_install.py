"""The Shopify app install, in one step for the merchant (docs/adapters.md, "Shopify"):

``GET /auth/shopify/install?shop=<name>.myshopify.com[&org=<signed hint>]`` checks the shop
domain, stores a single-use ``state`` nonce server side (Redis, ten minutes) bound to this
browser (a signed, HttpOnly cookie holding the same nonce) and redirects to Shopify's
authorize page.

``GET /auth/shopify/callback`` refuses (4xx, nothing stored) a shop domain that is not
``<name>.myshopify.com``, a query whose ``hmac`` does not verify with the app's secret, and a
``state`` that is not this browser's or was already used (the nonce is taken from Redis
atomically, so a replayed callback finds nothing). Then, server to server: the code is
exchanged for an offline access token, the connection is stored (token encrypted; webhook
secret = the app's secret, which signs Shopify's webhooks), every API topic is subscribed
through the GraphQL Admin API (existing subscriptions listed first: a second install
duplicates nothing), the first historical sync is queued, and the merchant is redirected to
the dashboard. The token appears in no redirect, page or log line.

**Which org.** A signed org hint in the install URL (made by
``cartrecovery shopify install-link --org``) names the org; else the org the shop was
connected to before (a reinstall); else a new org named after the shop.
"""

from __future__ import annotations

import json
import logging
import secrets
from urllib.parse import urlencode
from uuid import UUID

from flask import Blueprint, redirect, request
from itsdangerous import BadData, URLSafeSerializer

from cartrecovery import audit, tenancy
from cartrecovery.http_client import StoreApiError
from integrations import jobs, webhooks
from integrations.shopify import oauth
from integrations.shopify.api import valid_shop_domain
from integrations.shopify.webhooks import registrar

from .errors import ApiError
from .runtime import runtime

bp = Blueprint("shopify_install", __name__)
log = logging.getLogger(__name__)

STATE_COOKIE = "cartrecovery_shopify_state"
STATE_TTL_SECONDS = 600
STATE_SALT = "cartrecovery.shopify-oauth-state.v1"
CALLBACK_PATH = "/auth/shopify/callback"


def _state_key(nonce: str) -> str:
    return f"cartrecovery:shopify-oauth:{nonce}"


def _cookie_signer() -> URLSafeSerializer:
    return URLSafeSerializer(runtime().settings.secret_key, salt=STATE_SALT)


def _app_credentials() -> tuple[str, str]:
    settings = runtime().settings
    if not settings.shopify_api_key or not settings.shopify_api_secret:
        raise ApiError(
            404,
            "shopify_app_not_configured",
            "Shopify installs need SHOPIFY_API_KEY and SHOPIFY_API_SECRET",
        )
    return settings.shopify_api_key, settings.shopify_api_secret


def _shop(value: str | None) -> str:
    shop = (value or "").strip().lower()
    if not valid_shop_domain(shop):
        raise ApiError(
            400,
            "invalid_shop",
            "shop must be a <name>.myshopify.com domain",
            {"shop": (value or "")[:255]},
        )
    return shop


@bp.get("/auth/shopify/install")
def install():
    """Start a Shopify install: redirect to the shop's authorize page."""
    api_key, _ = _app_credentials()
    shop = _shop(request.args.get("shop"))
    rt = runtime()
    org_id = None
    hint = request.args.get("org")
    if hint:
        org_id = oauth.read_org_hint(rt.settings.secret_key, hint)
        if org_id is None or not _org_exists(org_id):
            raise ApiError(400, "invalid_org_hint", "the org hint is not genuine or has expired")
    nonce = secrets.token_urlsafe(32)
    rt.redis.set(
        _state_key(nonce), json.dumps({"shop": shop, "org_id": org_id}), ex=STATE_TTL_SECONDS
    )
    target = oauth.authorize_url(shop, api_key, rt.settings.app_url + CALLBACK_PATH, nonce)
    response = redirect(target, code=302)
    response.set_cookie(
        STATE_COOKIE,
        _cookie_signer().dumps(nonce),
        max_age=STATE_TTL_SECONDS,
        httponly=True,
        secure=rt.settings.app_url.startswith("https://"),
        samesite="Lax",  # sent on Shopify's top-level redirect back to us
        path=CALLBACK_PATH,
    )
    return response


def _org_exists(org_id: str) -> bool:
    with runtime().db.system() as conn:
        row = conn.execute("SELECT 1 FROM app.orgs WHERE org_id = %s", (UUID(org_id),))
        return row.fetchone() is not None


def _take_state(shop: str) -> dict:
    """The install this browser started for ``shop``, consumed (single use); else 403."""
    state = request.args.get("state") or ""
    try:
        mine = _cookie_signer().loads(request.cookies.get(STATE_COOKIE) or "")
    except BadData:
        mine = None
    if not state or not isinstance(mine, str) or not secrets.compare_digest(mine, state):
        raise ApiError(403, "invalid_state", "the install was not started by this browser")
    raw = runtime().redis.getdel(_state_key(state))
    if raw is None:
        raise ApiError(403, "invalid_state", "the install link expired or was already used")
    stored = json.loads(raw)
    if stored.get("shop") != shop:
        raise ApiError(403, "invalid_state", "the install was started for another shop")
    return stored


def _org_for(shop: str, hinted: str | None) -> UUID:
    rt = runtime()
    if hinted:
        return UUID(hinted)
    previous = tenancy.find_connection(
        rt.db, rt.encryption_key, "shopify", shop, statuses=tenancy.STATUSES
    )
    if previous is not None:
        return previous.org_id
    return tenancy.create_org(rt.db, shop)


@bp.get(CALLBACK_PATH)
def callback():
    """Finish a Shopify install (see the module doc); redirects to the dashboard."""
    api_key, api_secret = _app_credentials()
    shop = _shop(request.args.get("shop"))
    if not oauth.verify_query(request.args.items(multi=True), api_secret):
        raise ApiError(401, "invalid_hmac", "the callback's hmac does not verify")
    stored = _take_state(shop)
    code = request.args.get("code")
    if not code:
        raise ApiError(400, "missing_code", "the callback carries no authorization code")
    rt = runtime()
    base = rt.settings.shopify_api_base_url
    try:
        token = oauth.exchange_code(shop, code, api_key, api_secret, base)
    except StoreApiError as exc:
        log.warning("shopify install of %s: %s", shop, exc)
        raise ApiError(
            502, "token_exchange_failed", "Shopify did not give an access token", {"shop": shop}
        ) from None
    credentials = {"access_token": token.access_token, "scope": token.scope}
    if base:
        credentials["api_base_url"] = base
    org_id = _org_for(shop, stored.get("org_id"))
    try:
        connection_id = tenancy.add_connection(
            rt.db, rt.encryption_key, org_id, "shopify", shop, api_secret, credentials
        )
    except ValueError as exc:
        raise ApiError(409, "already_connected", str(exc), {"shop": shop}) from exc
    audit.record(rt.db, org_id, "system", "shopify.install", str(connection_id), {"shop": shop})
    connection = tenancy.get_connection(rt.db, rt.encryption_key, connection_id)
    try:
        result = webhooks.ensure(registrar(connection, rt.settings.app_url))
    except webhooks.WebhookError as exc:
        log.warning("shopify install of %s: webhook registration failed: %s", shop, exc)
        raise ApiError(
            502,
            "webhook_registration_failed",
            "the store is connected but its webhooks could not be registered; "
            "install again or run `cartrecovery connections verify --fix`",
            {"shop": shop, "connection_id": str(connection_id)},
        ) from None
    job_id = jobs.enqueue_first_sync(rt.redis, rt.settings.queue_name, connection_id)
    log.info(
        "shopify install of %s: connection %s, %d webhook(s) created, first sync job %s",
        shop,
        connection_id,
        len(result.created),
        job_id,
    )
    query = urlencode({"connected": "shopify", "shop": shop, "connection_id": str(connection_id)})
    response = redirect(f"{rt.settings.dashboard_url}/?{query}", code=302)
    response.delete_cookie(STATE_COOKIE, path=CALLBACK_PATH)
    return response
