"""The adapter interface: what a store platform must provide so its webhooks become
canonical cart, checkout, order and customer state.

An adapter never touches HTTP framework objects or the database session itself. It gets an
``InboundRequest`` (raw body and headers) and the store's ``Connection`` (secrets decrypted),
and answers three questions in this order, each before anything is written:

1. ``locate``: which store sent this? (a shop domain, store hash or site URL) — the
   dispatcher looks the connection up by (platform, that key); unknown → 404.
2. ``verify``: is it authentic? (HMAC, public-key signature, shared header) — False → 401.
3. ``parse``: what happened? A ``Delivery``: the topic, the platform's delivery id for
   deduplication, the payload to keep in raw.events, and an ``apply`` function that performs
   the canonical state change (``cartrecovery.carts``, ``cartrecovery.orders``) inside the
   tenant transaction.
   Fetching a full object from the platform's API (where webhooks carry only ids) happens in
   ``parse``, before the transaction opens. Bad payloads raise ``BadPayload`` (400).

The dispatcher (``ingest.webhooks.dispatch``) stores every delivery once. An ``apply`` that
is a ``carts.CartChange`` (or none) is deferred: the raw event and the encoded change commit
together and ``cartrecovery.applier`` applies the change shortly after, in a batch. Any other
``apply`` runs inline: the dedup key, the state change and the raw event commit in one
transaction, so such a delivery is either fully applied or not at all. Adapters that can
express their change as a ``CartChange`` should: it is the fast path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

import psycopg
from pydantic import ValidationError

from cartrecovery.storable_json import load_storable_json
from cartrecovery.tenancy import Connection

# apply(conn, org_id) -> the cart the delivery touched (kept on the raw event), or None.
Apply = Callable[[psycopg.Connection, UUID], UUID | None]


class AdapterError(Exception):
    """A request the platform sent that we refuse; becomes a JSON 4xx error."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class BadPayload(AdapterError):
    status, code = 400, "invalid_payload"


class InvalidJson(BadPayload):
    code = "invalid_json"


class Unauthorized(AdapterError):
    status, code = 401, "unauthorized"


class NotFound(AdapterError):
    status, code = 404, "not_found"


@dataclass(frozen=True)
class InboundRequest:
    """One webhook request as received. ``headers`` is case-insensitive (HTTP/2 lowercases
    names); ``topic`` is the topic named by the URL, where the platform puts it there."""

    body: bytes
    headers: Mapping[str, str]
    url: str
    topic: str | None = None
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Delivery:
    """What one webhook request means.

    ``dedup_key``: the platform's delivery/event id (None → a hash of the body).
    ``store=False``: acknowledge with 200 and keep nothing (e.g. WooCommerce's ping).
    ``apply=None``: keep the raw event only.
    ``headers=None``: keep the request's headers, credentials left out.
    """

    topic: str
    payload: Any = None
    dedup_key: str | None = None
    apply: Apply | None = None
    occurred_at: datetime | None = None
    headers: dict[str, str] | None = None
    store: bool = True
    response: dict[str, Any] | None = None  # extra fields for the 200 body


class Adapter(ABC):
    """Subclass, set ``platform``, implement the three steps, and register the class under
    the ``cartrecovery.adapters`` entry-point group with the platform's name."""

    platform: ClassVar[str]

    @staticmethod
    def store_key(value: str) -> str:
        """The form a connection's ``shop_domain`` is stored in, from what an admin typed
        (the same form ``locate`` returns); ValueError if it cannot be one."""
        return value.strip().lower()

    # What the store must be told to call: topic → URL path ("{connection_id}" is filled
    # in). Empty: the store posts everything to /api/webhooks/custom/{connection_id}.
    webhook_topics: ClassVar[dict[str, str]] = {}
    # The error code of the 404 for an unknown store (the same answer for every one).
    unknown_store_code: ClassVar[str] = "unknown_store"

    def connection_statuses(self, request: InboundRequest) -> tuple[str, ...]:
        """Which connection statuses this request may reach: active stores only, unless the
        platform still sends something we must act on after uninstall (privacy requests)."""
        return ("active",)

    def acknowledge_unsigned(self, request: InboundRequest) -> Delivery | None:
        """A request the platform sends unsigned and expects a 200 for (a setup ping);
        return a ``Delivery(store=False)`` for it, else None. Runs before ``locate``."""
        return None

    @abstractmethod
    def locate(self, request: InboundRequest) -> str | None:
        """The store's key (shop domain, store hash, site URL) as given when the connection
        was added, or None if the request does not say (→ 401)."""

    @abstractmethod
    def verify(self, request: InboundRequest, connection: Connection) -> bool:
        """True only if the request is authentic for ``connection``."""

    @abstractmethod
    def parse(self, request: InboundRequest, connection: Connection) -> Delivery:
        """Turn the verified request into a Delivery; raise BadPayload for bad input."""


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object that Postgres can store, or BadPayload (code
    ``invalid_json``): not JSON, not an object, too deeply nested, or holding what jsonb
    refuses (NaN, Infinity, NUL characters, lone surrogates)."""
    try:
        payload = load_storable_json(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidJson("body is not valid JSON", {"reason": str(exc)[:200]}) from exc
    if not isinstance(payload, dict):
        raise InvalidJson("body must be a JSON object")
    return payload


def error_details(exc: ValueError) -> dict[str, Any]:
    """The ``details`` of a 400 for a payload or canonical record that failed validation:
    pydantic's error list, or the message of msgspec's / the canonical record's error."""
    if isinstance(exc, ValidationError):
        return {"errors": exc.errors(include_url=False, include_context=False, include_input=False)}
    return {"errors": [{"msg": str(exc)[:500]}]}
