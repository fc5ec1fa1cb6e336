"""Historical import: ``cartrecovery sync PLATFORM --connection ID --since DATE``.

Pulls the abandoned checkouts and orders a store already has through its API and applies
them exactly as webhooks would be applied: each object goes through the platform adapter's
own normalisation (Shopify and WooCommerce: the adapter's ``parse`` with the topic the
webhook would carry; BigCommerce: the adapter's ``order_to_canonical``) and the
``cartrecovery.carts``/``orders`` functions, and is kept in ``raw.events``.

What is read (``RESOURCES``):

- Shopify: ``checkouts`` = ``GET /admin/api/<ver>/checkouts.json?created_at_min=…&limit=250``
  (abandoned checkouts), ``orders`` = ``orders.json?status=any&created_at_min=…&limit=250``;
  ``X-Shopify-Access-Token``; cursor pagination by the ``Link: <…>; rel="next"`` header.
- WooCommerce: ``orders`` = ``GET /wp-json/wc/v3/orders?after=…&status=pending,failed,
  processing,completed&per_page=100&page=N`` with basic auth (consumer key/secret); pages
  until ``X-WP-TotalPages`` or an empty page. Open statuses become carts, paid ones orders.
- BigCommerce: carts cannot be listed (v3 carts are read one by one, by id; abandoned carts
  only by the token of an Abandoned Cart Saver link), so ``checkouts`` = the v2 orders with
  status "Incomplete" (``status_id=0``: checkouts that never became orders [K, unconfirmed])
  imported as carts without items, and ``orders`` = ``GET /v2/orders?min_date_created=…
  &page=N&limit=250``; pages until an empty page (BigCommerce answers 204).

**Resumable.** ``app.sync_state`` keeps, per connection and resource, the ``since`` and the
cursor of the next page (a URL or a page number); it is updated in the transaction that
applies the page, so a sync stopped by an error or Ctrl-C continues at the first page not
committed. Running it again with the same ``since`` after it finished does nothing
(``restart=True`` starts over); another ``since`` starts over.

**Idempotent with webhooks.** Each object is stored under the dedup key
``sync:<resource>:<object id>:<object version>`` (version = its ``updated_at`` /
``date_modified``), so a second sync of the same object version stores nothing. A webhook
delivery keeps its own key (the platform's delivery id), so the raw event of a webhook and
of a sync of the same version may both exist; the canonical state cannot diverge, because
carts are upserted by (platform, external id) with the older-never-wins rule on the
platform's ``updated_at``, and orders are recorded once by (platform, order id).

**No sends for old abandonments.** An imported cart whose last platform activity is older
than the org's abandonment timeout is marked ``abandoned`` directly (``abandoned_at`` = that
activity + the timeout) and never enrolled: the scheduler enrolls only the carts its own
pass marks abandoned. ``last_activity_at`` is set back to the platform's time, so a recent
checkout (inside the timeout) stays active and is abandoned — and recovered — normally.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import psycopg
from pydantic import ValidationError

from .canonical import CanonicalCart
from .carts import upsert_cart
from .db import Database
from .events import append_event, claim_event
from .http_client import StoreHttpClient
from .orders import record_order
from .tenancy import Connection

log = logging.getLogger(__name__)

SHOPIFY_API_VERSION = "2025-07"
# A sync runs unattended: more patience with rate limits than a webhook request has.
SYNC_CLIENT_OPTIONS: dict[str, Any] = {"timeout": 30, "max_attempts": 8, "max_retry_after": 300}


class SyncError(Exception):
    """The sync cannot go on (no credentials, the API refuses); pages already imported stay
    imported and the next run resumes after them."""


# --- state changes shared with the webhook path -----------------------------------------------


def backdate_activity(conn: psycopg.Connection, org_id: UUID, cart_id: UUID, at: datetime) -> None:
    """The shopper's last action was at ``at`` (not when we heard of it): an active cart's
    idle clock starts there."""
    conn.execute(
        "UPDATE app.carts SET last_activity_at = LEAST(last_activity_at, %s) "
        "WHERE org_id = %s AND cart_id = %s AND status = 'active'",
        (at, org_id, cart_id),
    )


def settle_imported_cart(conn: psycopg.Connection, org_id: UUID, cart_id: UUID) -> str | None:
    """After a historical import of the cart: its idle clock starts at the platform's last
    update, and if that is older than the org's abandonment timeout, the cart is abandoned
    now, without enrollment (no message is ever sent for it). Returns the cart's status."""
    row = conn.execute(
        """
        UPDATE app.carts c
        SET last_activity_at = LEAST(c.last_activity_at,
                                     COALESCE(c.source_updated_at, c.last_activity_at)),
            status = CASE WHEN c.status = 'active' AND COALESCE(c.source_updated_at,
                                 c.source_created_at, '-infinity') < t.threshold
                          THEN 'abandoned' ELSE c.status END,
            abandoned_at = CASE WHEN c.status = 'active' AND COALESCE(c.source_updated_at,
                                 c.source_created_at, '-infinity') < t.threshold
                                THEN COALESCE(COALESCE(c.source_updated_at, c.source_created_at)
                                              + t.timeout, now())
                                ELSE c.abandoned_at END,
            updated_at = now()
        FROM (SELECT make_interval(secs => abandonment_timeout_seconds) AS timeout,
                     now() - make_interval(secs => abandonment_timeout_seconds) AS threshold
              FROM app.orgs WHERE org_id = %(org)s) t
        WHERE c.org_id = %(org)s AND c.cart_id = %(cart)s
        RETURNING c.status
        """,
        {"org": org_id, "cart": cart_id},
    ).fetchone()
    return row["status"] if row else None


# --- sources -----------------------------------------------------------------------------------


@dataclass
class Page:
    objects: list[dict]
    next_cursor: str | None
    total: int | None = None  # objects in the whole resource, when the API says


@dataclass
class Change:
    """One imported object, ready to apply: ``apply(conn, org_id) -> cart_id | None``."""

    key: str
    topic: str
    payload: Any
    apply: Callable[[psycopg.Connection, UUID], UUID | None] | None
    occurred_at: datetime | None = None


class Resource(ABC):
    """One listable resource of a platform API."""

    name: str

    def __init__(self, connection: Connection, client: StoreHttpClient, since: datetime):
        self.connection = connection
        self.client = client
        self.since = since

    @abstractmethod
    def first_cursor(self) -> str: ...

    @abstractmethod
    def fetch(self, cursor: str) -> Page: ...

    @abstractmethod
    def change(self, obj: dict) -> Change:
        """Raise ValueError (incl. pydantic's ValidationError) for an unreadable object."""


def _get(client: StoreHttpClient, path: str, **kw):
    try:
        response = client.get(path, **kw)
    except Exception as exc:  # transport errors that outlived the retries
        raise SyncError(f"GET {path}: {exc}") from exc
    if response.status_code == 204:
        return response, None
    if not 200 <= response.status_code < 300:
        raise SyncError(f"GET {path} answered {response.status_code}: {response.text[:200]}")
    try:
        return response, response.json()
    except ValueError as exc:
        raise SyncError(f"GET {path}: the answer is not JSON") from exc


def _version(obj: dict, *fields: str) -> str:
    for name in fields:
        if obj.get(name):
            return str(obj[name])
    return "-"


def _parsed(
    adapter, connection: Connection, obj: dict, headers: dict[str, str], topic: str | None = None
):
    """The adapter's own webhook parsing of ``obj`` (signature checks are not involved)."""
    from ingest.adapters.base import AdapterError, InboundRequest

    request = InboundRequest(
        body=json.dumps(obj).encode(), headers=headers, url="sync:", topic=topic
    )
    try:
        return adapter.parse(request, connection)
    except AdapterError as exc:
        raise ValueError(exc.message) from exc


# Shopify


class _ShopifyResource(Resource):
    key_field = ""  # the list in the answer
    id_field = "id"  # what names the object (a checkout: its token, the cart's external id)
    topic = ""

    def fetch(self, cursor: str) -> Page:
        response, body = _get(self.client, cursor)
        objects = (body or {}).get(self.key_field) if isinstance(body, dict) else None
        if not isinstance(objects, list):
            raise SyncError(f"{cursor}: no {self.key_field} list in the answer")
        following = response.links.get("next", {}).get("url")
        return Page([o for o in objects if isinstance(o, dict)], following)

    def change(self, obj: dict) -> Change:
        from ingest.adapters.shopify import ShopifyAdapter

        delivery = _parsed(ShopifyAdapter(), self.connection, obj, {}, topic=self.topic)
        ident = obj.get(self.id_field)
        key = f"sync:{self.name}:{ident}:{_version(obj, 'updated_at', 'created_at')}"
        return Change(key, delivery.topic, delivery.payload, delivery.apply, delivery.occurred_at)


class ShopifyCheckouts(_ShopifyResource):
    name, key_field, id_field, topic = "checkouts", "checkouts", "token", "checkouts/update"

    def first_cursor(self) -> str:
        query = urlencode({"created_at_min": _iso(self.since), "limit": 250})
        return f"/admin/api/{_shopify_version(self.connection)}/checkouts.json?{query}"


class ShopifyOrders(_ShopifyResource):
    name, key_field, topic = "orders", "orders", "orders/create"

    def first_cursor(self) -> str:
        query = urlencode({"status": "any", "created_at_min": _iso(self.since), "limit": 250})
        return f"/admin/api/{_shopify_version(self.connection)}/orders.json?{query}"


def _shopify_version(connection: Connection) -> str:
    return str((connection.credentials or {}).get("api_version") or SHOPIFY_API_VERSION)


# WooCommerce


class WooOrders(Resource):
    name = "orders"
    per_page = 100

    def first_cursor(self) -> str:
        return "1"

    def fetch(self, cursor: str) -> Page:
        page = int(cursor)
        response, body = _get(
            self.client,
            "/wp-json/wc/v3/orders",
            params={
                "after": _iso(self.since),
                "status": "pending,failed,processing,completed",
                "per_page": self.per_page,
                "page": page,
                "orderby": "date",
                "order": "asc",
            },
        )
        if not isinstance(body, list):
            raise SyncError("/wp-json/wc/v3/orders: the answer is not a list")
        total_pages = _int(response.headers.get("X-WP-TotalPages"))
        last = not body or (total_pages is not None and page >= total_pages)
        return Page(
            [o for o in body if isinstance(o, dict)],
            None if last else str(page + 1),
            _int(response.headers.get("X-WP-Total")),
        )

    def change(self, obj: dict) -> Change:
        from ingest.adapters.woocommerce import WooCommerceAdapter

        site = self.client.base_url + "/"
        delivery = _parsed(
            WooCommerceAdapter(),
            self.connection,
            obj,
            {"X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Source": site},
        )
        key = f"sync:orders:{obj.get('id')}:{_version(obj, 'date_modified_gmt', 'date_modified')}"
        return Change(key, delivery.topic, delivery.payload, delivery.apply, delivery.occurred_at)


# BigCommerce


class _BigCommerceOrders(Resource):
    status_id: int | None = None
    limit = 250

    def first_cursor(self) -> str:
        return "1"

    def fetch(self, cursor: str) -> Page:
        page = int(cursor)
        params: dict[str, Any] = {
            "min_date_created": _iso(self.since),
            "page": page,
            "limit": self.limit,
            "sort": "date_created:asc",
        }
        if self.status_id is not None:
            params["status_id"] = self.status_id
        _, body = _get(self.client, "/v2/orders", params=params)
        if body is None:
            return Page([], None)
        if not isinstance(body, list):
            raise SyncError("/v2/orders: the answer is not a list")
        objects = [o for o in body if isinstance(o, dict)]
        return Page(objects, str(page + 1) if len(body) >= self.limit else None)


class BigCommerceCheckouts(_BigCommerceOrders):
    name, status_id = "checkouts", 0

    def change(self, obj: dict) -> Change:
        from ingest.adapters.bigcommerce import PLATFORM, read_order, rfc2822

        order = read_order(obj)
        address = order.billing_address
        cart = CanonicalCart(
            platform=PLATFORM,
            # The cart id when the order names it: a later cart webhook updates the same row.
            external_id=order.cart_id or f"order-{order.id}",
            connection_id=self.connection.connection_id,
            email=address.email if address else None,
            phone=address.phone if address else None,
            first_name=address.first_name if address else None,
            last_name=address.last_name if address else None,
            customer_external_id=order.customer_id
            if order.customer_id not in (None, "0")
            else None,
            currency=order.currency_code,
            source_created_at=rfc2822(order.date_created),
            source_updated_at=rfc2822(order.date_modified) or rfc2822(order.date_created),
        )
        return Change(
            f"sync:checkouts:{order.id}:{_version(obj, 'date_modified')}",
            "store/order/incomplete",
            {"order": obj},
            lambda conn, org_id: upsert_cart(conn, org_id, cart),
            cart.source_updated_at,
        )


class BigCommerceOrders(_BigCommerceOrders):
    name = "orders"

    def change(self, obj: dict) -> Change:
        from ingest.adapters.bigcommerce import order_to_canonical, read_order

        order = read_order(obj)
        if order.status_id == 0:
            return Change(
                f"sync:orders:{order.id}:-", "store/order/incomplete", {"order": obj}, None
            )
        canonical = order_to_canonical(order, self.connection.connection_id)
        return Change(
            f"sync:orders:{order.id}:{_version(obj, 'date_modified')}",
            "store/order/created",
            {"order": obj},
            lambda conn, org_id: record_order(conn, org_id, canonical)["cart_id"],
            canonical.ordered_at,
        )


RESOURCES: dict[str, dict[str, type[Resource]]] = {
    "shopify": {"checkouts": ShopifyCheckouts, "orders": ShopifyOrders},
    "woocommerce": {"orders": WooOrders},
    "bigcommerce": {"checkouts": BigCommerceCheckouts, "orders": BigCommerceOrders},
}


def api_client(connection: Connection, **client_options) -> StoreHttpClient:
    """The API client of a connection, from its credentials (SyncError without them).

    Shopify ``{"access_token", "api_base_url"?, "api_version"?}``; WooCommerce
    ``{"consumer_key", "consumer_secret", "api_base_url"?}``; BigCommerce
    ``{"access_token", "api_base_url"?}``. The base URL defaults to the store's own
    (``https://<shop_domain>``) or ``https://api.bigcommerce.com/stores/<hash>``.
    """
    creds = connection.credentials or {}
    options = {**SYNC_CLIENT_OPTIONS, **client_options}
    platform = connection.platform
    if platform == "shopify":
        if not creds.get("access_token"):
            raise SyncError("the connection has no Shopify access_token credential")
        base = creds.get("api_base_url") or f"https://{connection.shop_domain}"
        return StoreHttpClient(
            base,
            {"X-Shopify-Access-Token": creds["access_token"], "Accept": "application/json"},
            **options,
        )
    if platform == "woocommerce":
        if not creds.get("consumer_key") or not creds.get("consumer_secret"):
            raise SyncError("the connection has no WooCommerce consumer_key/consumer_secret")
        base = creds.get("api_base_url") or f"https://{connection.shop_domain}"
        return StoreHttpClient(
            base,
            {"Accept": "application/json"},
            auth=(creds["consumer_key"], creds["consumer_secret"]),
            **options,
        )
    if platform == "bigcommerce":
        if not creds.get("access_token"):
            raise SyncError("the connection has no BigCommerce access_token credential")
        base = (creds.get("api_base_url") or "https://api.bigcommerce.com").rstrip("/")
        return StoreHttpClient(
            f"{base}/stores/{connection.shop_domain}",
            {"X-Auth-Token": creds["access_token"], "Accept": "application/json"},
            **options,
        )
    raise SyncError(f"sync is not available for {platform}; platforms: {sorted(RESOURCES)}")


# --- the run -----------------------------------------------------------------------------------


@dataclass
class ResourceResult:
    resource: str
    imported: int = 0  # objects stored by this run
    duplicates: int = 0  # objects already stored (same version)
    skipped: int = 0  # objects the adapter could not read
    pages: int = 0
    resumed: bool = False
    up_to_date: bool = False
    abandoned: int = 0  # imported carts settled as (old) abandoned
    errors: list[str] = field(default_factory=list)


class Progress:
    """What a progress display gets told (the CLI passes a tqdm-backed one)."""

    def start(self, resource: str, total: int | None) -> None: ...

    def advance(self, count: int, total: int | None = None) -> None: ...

    def finish(self) -> None: ...


def sync(
    db: Database,
    connection: Connection,
    since: datetime,
    *,
    resources: list[str] | None = None,
    restart: bool = False,
    progress: Progress | None = None,
    client: StoreHttpClient | None = None,
    **client_options,
) -> list[ResourceResult]:
    """Import the connection's history since ``since``, resource by resource (see module
    doc); returns what each resource did. Raises SyncError when the API fails (pages
    already committed stay, and the next run resumes)."""
    available = RESOURCES.get(connection.platform)
    if available is None:
        raise SyncError(
            f"sync is not available for {connection.platform}; platforms: {sorted(RESOURCES)}"
        )
    names = resources or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SyncError(
            f"unknown resource(s) {unknown}; {connection.platform} has {sorted(available)}"
        )
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    client = client or api_client(connection, **client_options)
    progress = progress or Progress()
    results = []
    for name in names:
        resource = available[name](connection, client, since)
        results.append(_sync_resource(db, connection, resource, since, restart, progress))
    return results


def _sync_resource(
    db: Database,
    connection: Connection,
    resource: Resource,
    since: datetime,
    restart: bool,
    progress: Progress,
) -> ResourceResult:
    result = ResourceResult(resource.name)
    cursor = _start(db, connection, resource, since, restart, result)
    if cursor is None:
        result.up_to_date = True
        return result
    progress.start(resource.name, None)
    try:
        while cursor is not None:
            page = resource.fetch(cursor)
            changes = []
            for obj in page.objects:
                try:
                    changes.append(resource.change(obj))
                except (ValueError, ValidationError) as exc:
                    result.skipped += 1
                    result.errors.append(f"{resource.name} {obj.get('id')}: {exc}"[:300])
            _apply_page(db, connection, resource.name, changes, page.next_cursor, result)
            result.pages += 1
            progress.advance(len(page.objects), page.total)
            cursor = page.next_cursor
    finally:
        progress.finish()
    return result


def _start(
    db: Database,
    connection: Connection,
    resource: Resource,
    since: datetime,
    restart: bool,
    result: ResourceResult,
) -> str | None:
    """The cursor to continue from (resume), or the first one; None if already done."""
    org_id = connection.org_id
    with db.tenant(org_id) as conn:
        row = conn.execute(
            "SELECT since, cursor, done_at FROM app.sync_state "
            "WHERE org_id = %s AND connection_id = %s AND resource = %s FOR UPDATE",
            (org_id, connection.connection_id, resource.name),
        ).fetchone()
        if row and row["since"] == since and not restart:
            if row["done_at"] is not None:
                return None
            if row["cursor"]:
                result.resumed = True
                return row["cursor"]
        first = resource.first_cursor()
        conn.execute(
            """
            INSERT INTO app.sync_state (org_id, connection_id, resource, since, cursor)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (org_id, connection_id, resource) DO UPDATE
              SET since = EXCLUDED.since, cursor = EXCLUDED.cursor, imported = 0, pages = 0,
                  started_at = now(), updated_at = now(), done_at = NULL
            """,
            (org_id, connection.connection_id, resource.name, since, first),
        )
    return first


def _apply_page(
    db: Database,
    connection: Connection,
    resource: str,
    changes: list[Change],
    next_cursor: str | None,
    result: ResourceResult,
) -> None:
    """One transaction: every object of the page, then the checkpoint."""
    org_id = connection.org_id
    platform = connection.platform
    imported = 0
    with db.tenant(org_id) as conn:
        for change in changes:
            event_id = claim_event(conn, org_id, platform, change.key)
            if event_id is None:
                result.duplicates += 1
                continue
            cart_id = change.apply(conn, org_id) if change.apply else None
            if cart_id is not None and settle_imported_cart(conn, org_id, cart_id) == "abandoned":
                result.abandoned += 1
            append_event(
                conn,
                event_id,
                org_id=org_id,
                source=platform,
                topic=change.topic,
                dedup_key=change.key,
                payload=change.payload,
                headers={"X-Cartrecovery-Sync": resource},
                connection_id=connection.connection_id,
                cart_id=cart_id,
                occurred_at=change.occurred_at,
            )
            imported += 1
        conn.execute(
            """
            UPDATE app.sync_state
            SET cursor = %s, imported = imported + %s, pages = pages + 1, updated_at = now(),
                done_at = CASE WHEN %s::text IS NULL THEN now() END
            WHERE org_id = %s AND connection_id = %s AND resource = %s
            """,
            (next_cursor, imported, next_cursor, org_id, connection.connection_id, resource),
        )
    result.imported += imported


def sync_state(db: Database, org_id: UUID, connection_id: UUID) -> list[dict]:
    """The checkpoints of one connection (resource, since, cursor, imported, done_at)."""
    with db.tenant(org_id) as conn:
        return conn.execute(
            "SELECT resource, since, cursor, imported, pages, started_at, updated_at, done_at "
            "FROM app.sync_state WHERE org_id = %s AND connection_id = %s ORDER BY resource",
            (org_id, connection_id),
        ).fetchall()


def parse_since(value: str) -> datetime:
    """``2026-01-31`` or an ISO 8601 date-time; UTC unless an offset is given."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 date-time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def iter_results(results: list[ResourceResult]) -> Iterator[str]:
    """One human line per resource."""
    for r in results:
        if r.up_to_date:
            yield f"{r.resource}: already imported for this --since (use --restart to redo)"
            continue
        yield (
            f"{r.resource}: {r.imported} imported, {r.duplicates} already stored, "
            f"{r.skipped} unreadable, {r.abandoned} settled as past abandonment, "
            f"{r.pages} page(s){' (resumed)' if r.resumed else ''}"
        )
