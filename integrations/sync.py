"""Historical import: ``cartrecovery sync PLATFORM --connection ID --since DATE``.

Pulls the abandoned checkouts and orders a store already has through its API and applies
them exactly as webhooks would be applied: each object goes through the platform adapter's
own normalisation (:func:`parse_as_webhook`, or the adapter's converters) and the
``cartrecovery.carts`` functions, and is kept in ``raw.events``.

This module is the engine every platform shares (pages, checkpoints, dedup keys, the
transaction per page). What is read is the platform package's: its ``Platform`` names its
``sync_resources`` (``Resource`` classes in ``integrations/<platform>/sync.py``) and its
``api_client``; each of those modules says what it reads (Shopify: checkouts and orders;
WooCommerce: orders; BigCommerce: incomplete orders as checkouts, and orders).

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
platform's ``updated_at``, and orders are recorded once by (platform, order id). Each page
holds the org's change lock (``applier.lock_org_changes``): no webhook change of the org is
applied by another transaction while the page runs, and the page waits for one being
applied, so each sees the other's carts (one checkout is one cart, see the Shopify sync).
Then it applies the org's acknowledged webhooks the applier has not reached yet
(``applier.drain_unclaimed``), so it sees the carts they make; webhooks acknowledged
during the page are applied after it.

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
from uuid import UUID

import psycopg
from pydantic import ValidationError

from cartrecovery.applier import drain_unclaimed, lock_org_changes
from cartrecovery.cart_activity import settle_imported_cart
from cartrecovery.db import Database
from cartrecovery.events import append_event, claim_event
from cartrecovery.http_client import StoreHttpClient
from cartrecovery.tenancy import Connection

from .base import AdapterError, InboundRequest

log = logging.getLogger(__name__)

# A sync runs unattended: more patience with rate limits than a webhook request has.
SYNC_CLIENT_OPTIONS: dict[str, Any] = {"timeout": 30, "max_attempts": 8, "max_retry_after": 300}


class SyncError(Exception):
    """The sync cannot go on (no credentials, the API refuses); pages already imported stay
    imported and the next run resumes after them."""


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


def fetch_json(client: StoreHttpClient, path: str, **kw):
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


def object_version(obj: dict, *fields: str) -> str:
    for name in fields:
        if obj.get(name):
            return str(obj[name])
    return "-"


def parse_as_webhook(
    adapter, connection: Connection, obj: dict, headers: dict[str, str], topic: str | None = None
):
    """The adapter's own webhook parsing of ``obj`` (signature checks are not involved)."""
    request = InboundRequest(
        body=json.dumps(obj).encode(), headers=headers, url="sync:", topic=topic
    )
    try:
        return adapter.parse(request, connection)
    except AdapterError as exc:
        raise ValueError(exc.message) from exc


def api_client(connection: Connection, **client_options) -> StoreHttpClient:
    """The API client of a connection: its platform's ``api_client`` (SyncError when the
    platform cannot sync or the connection lacks the credentials it needs)."""
    found = _platform(connection.platform)
    return found.api_client(connection, **{**SYNC_CLIENT_OPTIONS, **client_options})


def syncable() -> list[str]:
    """The installed platforms that can import their history."""
    from .registry import platforms

    return sorted(name for name, p in platforms().items() if p.can_sync())


def _platform(name: str):
    from .registry import platform

    found = platform(name)
    if found is None or not found.can_sync():
        raise SyncError(f"sync is not available for {name}; platforms: {syncable()}")
    return found


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
    available = _platform(connection.platform).sync_resources
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
        # First, before any other lock: the org's webhook changes wait for this page (and it
        # for one being applied); then those acknowledged before it are applied, so the page
        # updates the carts they made (the same object seen twice is one cart, see the
        # Shopify sync). The applier leaves the org's changes pending meanwhile.
        lock_org_changes(conn, org_id)
        drain_unclaimed(conn, org_id)
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


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def summary(result: ResourceResult) -> dict[str, Any]:
    """What a run did to one resource, without its error texts (kept for the audit log)."""
    fields = ("imported", "duplicates", "skipped", "pages", "resumed", "up_to_date", "abandoned")
    return {"resource": result.resource, **{f: getattr(result, f) for f in fields}}


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
