"""Unique single-use discount codes, issued when a step that offers one is sent.

A step offers a discount with ``"discount": {"type": "percentage" | "fixed_amount" |
"free_shipping", "value": 10, "expires_in_hours": 72}`` (see ``cartrecovery.campaigns``).
:func:`issue` runs in the send job's transaction, after the gate and before rendering:

- one coupon per message: a retried job finds and reuses the one it made (``app.coupons``
  is unique on (org, message));
- the code is random (``SAVE-`` + 10 characters from an alphabet without look-alikes),
  unique per org, valid until ``expires_in_hours`` from issue;
- created in the store through its API when the cart's store connection has credentials:
  Shopify (a GraphQL code discount), WooCommerce (coupon), BigCommerce (coupon): the
  platform's ``coupon_client`` (``integrations/<platform>/coupons.py``, found through
  ``integrations.coupons.coupon_client``). Generic and Magento stores, and stores whose connection
  has no API credentials, get a code that exists only here (``platform = 'local'``): the
  merchant must honour it themselves, e.g. by reading ``app.coupons``;
- when the store's API fails, :class:`CouponError` is raised (``retryable`` says whether
  later could help) and nothing is stored, so no message promises a code that does not exist.

:func:`mark_redeemed` records that an order used a code.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from cartrecovery import tenancy
from cartrecovery.discounts import offer_of
from cartrecovery.http_client import StoreApiError
from cartrecovery.orders import redeem_coupons
from integrations.coupons import CouponSpec, coupon_client

log = logging.getLogger(__name__)

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes get typed by hand
CODE_LENGTH = 10
CODE_PREFIX = "SAVE-"
LOCAL = "local"


class CouponError(Exception):
    """The coupon could not be created; the message must not go out now. ``retryable``:
    the store's API failed in a way that may pass (timeout, 5xx, rate limit)."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


def new_code() -> str:
    """A fresh random code, e.g. ``SAVE-7KQ4M2PXAB`` (32^10 possibilities)."""
    return CODE_PREFIX + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


_COLUMNS = """coupon_id, org_id, message_id, cart_id, code, type, value, currency, expires_at,
              platform, connection_id, platform_ids, created_at, redeemed_at, order_id"""


def get_for_message(
    conn: psycopg.Connection, org_id: UUID | str, message_id: UUID | str
) -> dict | None:
    """The coupon issued for a message, or None."""
    return conn.execute(
        f"SELECT {_COLUMNS} FROM app.coupons WHERE org_id = %s AND message_id = %s",
        (org_id, message_id),
    ).fetchone()


def _connection(conn: psycopg.Connection, runtime: Any, org_id: Any, cart: dict):
    """The cart's store connection (its own, else the org's active one for the platform)."""
    connection_id = cart.get("connection_id")
    if connection_id is None and cart.get("platform"):
        row = conn.execute(
            "SELECT connection_id FROM app.connections WHERE org_id = %s AND platform = %s "
            "AND status = 'active' ORDER BY created_at LIMIT 1",
            (org_id, cart["platform"]),
        ).fetchone()
        connection_id = row["connection_id"] if row else None
    if connection_id is None:
        return None
    found = tenancy.get_connection(runtime.db, runtime.encryption_key, connection_id)
    if found is None or str(found.org_id) != str(org_id):
        return None
    return found


def _unused_code(conn: psycopg.Connection, org_id: Any) -> str:
    for _ in range(5):
        code = new_code()
        taken = conn.execute(
            "SELECT 1 FROM app.coupons WHERE org_id = %s AND upper(code) = %s", (org_id, code)
        ).fetchone()
        if not taken:
            return code
    raise CouponError("could not draw an unused coupon code", retryable=True)


def issue(
    conn: psycopg.Connection,
    runtime: Any,
    message: dict,
    step: dict | None,
    cart: dict | None,
    *,
    now: datetime | None = None,
) -> dict | None:
    """The coupon for ``message`` (an ``app.outbox`` row: ``org_id``, ``message_id``,
    ``cart_id``) if ``step`` offers a discount, else None.

    Idempotent per message: the stored coupon is returned when there is one. Otherwise a code
    is created in the store of ``cart`` (its ``connection_id``/``platform``; ``runtime``
    gives ``db`` and ``encryption_key`` to read the connection's credentials) or only locally,
    and stored in ``app.coupons`` through ``conn`` (the caller's tenant transaction).

    Returns the ``app.coupons`` row: ``code``, ``type``, ``value``, ``currency``,
    ``expires_at``, ``platform``, ``platform_ids``, ... . Raises CouponError when the store's
    API refuses or fails (nothing stored).
    """
    offer = offer_of(step)
    if offer is None:
        return None
    org_id, message_id = message["org_id"], message["message_id"]
    existing = get_for_message(conn, org_id, message_id)
    if existing is not None:
        return existing
    cart = cart or {}
    issued_at = now or datetime.now(UTC)
    code = _unused_code(conn, org_id)
    spec = CouponSpec(
        code=code,
        type=offer.type,
        value=offer.value,
        currency=cart.get("currency"),
        starts_at=issued_at,
        expires_at=issued_at + offer.lifetime,
    )
    store = _connection(conn, runtime, org_id, cart)
    client = (
        coupon_client(store.platform, store.shop_domain, getattr(store, "credentials", None))
        if store
        else None
    )
    platform, platform_ids = LOCAL, {}
    if client is not None:
        try:
            platform_ids = client.create_coupon(spec)
        except StoreApiError as exc:
            raise CouponError(f"coupon not created: {exc}", retryable=exc.retryable) from exc
        platform = client.platform
    row = conn.execute(
        f"""
        INSERT INTO app.coupons (org_id, message_id, cart_id, code, type, value, currency,
                                 expires_at, platform, connection_id, platform_ids, created_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}
        """,
        (
            org_id,
            message_id,
            message.get("cart_id") or cart.get("cart_id"),
            code,
            offer.type,
            offer.value,
            spec.currency,
            spec.expires_at,
            platform,
            store.connection_id if store else None,
            Jsonb(platform_ids),
            issued_at,
        ),
    ).fetchone()
    if row is None:  # the message got a coupon meanwhile (the row lock makes this rare)
        row = get_for_message(conn, org_id, message_id)
        if row is None:
            raise CouponError(f"coupon code {code} collided", retryable=True)
        if platform != LOCAL:
            log.warning("message %s: %s coupon %s created but unused", message_id, platform, code)
    return row


def mark_redeemed(
    conn: psycopg.Connection,
    org_id: UUID | str,
    codes: list[str],
    order_id: UUID | str | None,
    redeemed_at: datetime | None = None,
) -> list[str]:
    """Record that order ``order_id`` used ``codes`` (see ``carts.redeem_coupons``; ingest
    calls it for every order through ``record_order``)."""
    return redeem_coupons(conn, org_id, codes, order_id, redeemed_at)
