"""The send-time compliance gate: re-checked inside the transaction that holds the row lock.

Whatever was true when the message was scheduled, the customer may have bought, unsubscribed
or bounced since; this is the last look before anything leaves. Rules, in order (the first
that applies decides, and its reason is stored on the outbox row):

======================================  ==========  ===========================================
rule                                    status      reason
======================================  ==========  ===========================================
cart gone                               cancelled   cart_missing
cart converted / recovered              cancelled   cart_converted
checkout closed by the platform         cancelled   cart_closed
customer ordered since abandonment      cancelled   order_since_abandonment
no address                              held        no_recipient
SMS address not a valid number          held        invalid_phone
address on the suppression list         held        suppressed:<reason>
consent withdrawn (email, SMS)          held        consent_withdrawn
SMS without express consent             held        no_sms_consent
email without consent (org policy)      held        no_email_consent
push subscription gone / expired        held        no_push_subscription
an SMS already sent for this abandonment cancelled  sms_already_sent
SMS more than 48 h after abandonment    cancelled   sms_window_closed
frequency cap not expired               deferred    deferred:frequency_cap
outside quiet hours (recipient's time)  deferred    deferred:quiet_hours
======================================  ==========  ===========================================

Quiet hours hold only the channels in the org's ``quiet_hours.channels`` (SMS and push by
default: law for SMS, sensible for push; email timing is left to the send-time model).

Deferred messages go back to 'scheduled' with ``due_at`` at the first allowed instant; when it
comes, the whole gate runs again (so a deferral past the SMS window turns into a cancel).

Email consent policies (org setting ``email_consent_policy``): ``opt_in`` needs the latest
ledger entry for the address 'granted' or ``accepts_marketing`` true on the customer (the
checkout's marketing box, e.g. Shopify's ``buyer_accepts_marketing``); ``soft_opt_in`` also
accepts an existing customer (an earlier order). Under both, a 'withdrawn' ledger entry wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from cartrecovery import consents, suppressions
from cartrecovery.canonical import normalize_email
from cartrecovery.org_settings import QUIET_HOURS_CHANNELS, get_settings

from . import caps, quiet_hours
from .enrollment import customer_facts, subscription_live

SMS_WINDOW = timedelta(hours=48)
# How many recent raw events of a cart are searched for a shipping/billing address.
_ADDRESS_EVENTS = 10


@dataclass(frozen=True)
class Decision:
    """Why a message must not go now: ``status`` 'cancelled', 'held' or 'deferred' (then
    ``due_at`` is when to try again)."""

    status: str
    reason: str
    due_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict, compare=False)


def normalize_address(channel: str, address: str) -> str:
    """Addresses as suppressions and the ledger store them: email lower-cased, SMS E.164."""
    address = address.strip()
    if channel == "email":
        return address.lower()
    if channel == "sms":
        try:
            return consents.to_e164(address)
        except consents.InvalidAddress:
            return address
    return address


def check(
    conn: psycopg.Connection,
    message: dict,
    cart: dict | None,
    *,
    settings: dict | None = None,
    customer: dict | None = None,
    now: datetime | None = None,
) -> Decision | None:
    """Return why ``message`` must not go out now, or None if it may be sent.

    ``settings`` are the org's settings (read here when not given), ``customer`` the cart's
    customer row (read here when not given), ``now`` the decision time (default: the clock).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if cart is None:
        return Decision("cancelled", "cart_missing")
    if cart["status"] in ("converted", "recovered"):
        return Decision("cancelled", "cart_converted")
    if cart.get("closed_at") is not None:
        return Decision("cancelled", "cart_closed")
    if settings is None:
        settings = get_settings(conn, message["org_id"])
    if customer is None:
        customer = load_customer(conn, cart)
    if ordered_since_abandonment(conn, cart):
        return Decision("cancelled", "order_since_abandonment")

    channel = message["channel"]
    recipient = (message.get("recipient") or "").strip()
    if not recipient:
        return Decision("held", "no_recipient")
    if channel == "sms":
        try:
            recipient = consents.to_e164(recipient)
        except consents.InvalidAddress:
            return Decision("held", "invalid_phone")
    address = normalize_address(channel, recipient)

    # Every stored form (an erased subject's hash too), and opt-outs held for every org.
    suppressed = suppressions.is_suppressed(conn, message["org_id"], channel, address)
    if suppressed is not None:
        return Decision("held", f"suppressed:{suppressed}")

    refusal = _consent(conn, message, cart, customer, settings, address)
    if refusal is not None:
        return refusal

    if channel == "sms":
        refusal = _sms_limits(conn, message, cart, now)
        if refusal is not None:
            return refusal

    return _timing(conn, message, cart, customer, settings, address, now)


def load_customer(conn: psycopg.Connection, cart: dict) -> dict:
    """The cart's customer (phone, timezone, accepts_marketing...), or {} when unknown."""
    if not cart.get("customer_id"):
        return {}
    return (
        conn.execute(
            "SELECT * FROM app.customers WHERE org_id = %s AND customer_id = %s",
            (cart["org_id"], cart["customer_id"]),
        ).fetchone()
        or {}
    )


def ordered_since_abandonment(conn: psycopg.Connection, cart: dict) -> bool:
    """Whether the customer (same customer id or email) placed an order since they last
    touched the cart, through this cart or any other."""
    since = (
        min(t for t in (cart.get("last_activity_at"), cart.get("abandoned_at")) if t)
        if (cart.get("last_activity_at") or cart.get("abandoned_at"))
        else None
    )
    email = normalize_email(cart.get("email"))
    if since is None or (email is None and cart.get("customer_id") is None):
        return False
    return conn.execute(
        """
        SELECT EXISTS (
          SELECT 1 FROM app.orders o
          WHERE o.org_id = %(org_id)s AND o.ordered_at >= %(since)s
            AND (o.cart_id = %(cart_id)s
                 OR (o.customer_id IS NOT NULL AND o.customer_id = %(customer_id)s)
                 OR (o.email IS NOT NULL AND lower(o.email) = %(email)s))
        ) AS ordered
        """,
        {
            "org_id": cart["org_id"],
            "since": since,
            "cart_id": cart["cart_id"],
            "customer_id": cart.get("customer_id"),
            "email": email,
        },
    ).fetchone()["ordered"]


def _consent(conn, message, cart, customer, settings, address) -> Decision | None:
    channel = message["channel"]
    org_id = message["org_id"]
    if channel == "push":
        try:
            live = subscription_live(conn, org_id, address)
        except ValueError:
            live = False
        return None if live else Decision("held", "no_push_subscription")
    latest = consents.consent_status(conn, org_id, channel, address)
    if latest == "withdrawn":
        return Decision("held", "consent_withdrawn")
    if latest == "granted":
        return None
    if channel == "sms":
        # TCPA: marketing texts need prior express written consent, recorded in the ledger.
        return Decision("held", "no_sms_consent")
    if customer.get("accepts_marketing") is True:
        return None
    if (
        settings.get("email_consent_policy") == "soft_opt_in"
        and customer_facts(conn, cart)["returning"]
    ):
        return None
    return Decision("held", "no_email_consent")


def _sms_limits(conn, message, cart, now) -> Decision | None:
    already = conn.execute(
        """
        SELECT EXISTS (SELECT 1 FROM app.outbox
                       WHERE org_id = %s AND cart_id = %s AND channel = 'sms'
                         AND status IN ('sent', 'sending') AND message_id <> %s) AS sent
        """,
        (message["org_id"], message["cart_id"], message["message_id"]),
    ).fetchone()["sent"]
    if already:
        return Decision("cancelled", "sms_already_sent")
    abandoned_at = cart.get("abandoned_at")
    if abandoned_at is not None and now > abandoned_at + SMS_WINDOW:
        return Decision("cancelled", "sms_window_closed")
    return None


def _timing(conn, message, cart, customer, settings, address, now) -> Decision | None:
    """Frequency cap, then quiet hours from the instant the cap allows."""
    reasons = []
    at = now
    expires = caps.cap_expires_at(
        conn,
        message["org_id"],
        message["channel"],
        address,
        settings.get("frequency_caps"),
        now,
        message["message_id"],
    )
    if expires is not None:
        reasons.append("frequency_cap")
        at = expires
    details = {}
    hours = settings.get("quiet_hours") or {}
    if quiet_hours_apply(hours, message["channel"]):
        location = recipient_location(conn, message, cart, customer, settings)
        rules = quiet_hours.region_rules(hours.get("regions"), location)
        allowed = quiet_hours.next_allowed(at, location.zones, hours, rules)
        if allowed > at:
            reasons.append("quiet_hours")
            at = allowed
        details = {"zones": list(location.zones), "location_source": location.source}
    if not reasons:
        return None
    return Decision("deferred", "deferred:" + ",".join(reasons), at, details)


def quiet_hours_apply(hours: dict, channel: str) -> bool:
    """Whether the org's quiet hours hold ``channel`` (``quiet_hours.channels``; SMS and push
    by default, and for settings stored before the setting existed)."""
    channels = hours.get("channels")
    if channels is None:
        channels = QUIET_HOURS_CHANNELS
    return channel in channels


def recipient_location(conn, message, cart, customer, settings) -> quiet_hours.Location:
    """Where the recipient is, best evidence first: the phone number (the SMS recipient, or
    the cart's/customer's phone for other channels), the customer's time zone, the country
    of the cart's shipping/billing address, else the store's time zone."""
    phone = (
        message.get("recipient")
        if message["channel"] == "sms"
        else (cart.get("phone") or customer.get("phone"))
    )
    found = quiet_hours.location_for_phone(phone) if phone else None
    if found is None:
        found = quiet_hours.location_for_zone(customer.get("timezone"), "timezone")
    if found is None:
        country, province = cart_address(conn, cart)
        found = quiet_hours.location_for_address(country, province)
    if found is None:
        found = quiet_hours.location_for_zone(settings.get("store_timezone") or "UTC", "store")
    return found or quiet_hours.Location(("UTC",), None, None, "store")


_ADDRESS_KEYS = ("shipping_address", "billing_address", "shipping", "billing")
_COUNTRY_KEYS = ("country_code", "country_iso2", "country")
_PROVINCE_KEYS = ("province_code", "state_code", "state", "region_code")


def _address_in(payload: Any, depth: int = 0) -> tuple[str | None, str | None] | None:
    if not isinstance(payload, dict) or depth > 3:
        return None
    for key in _ADDRESS_KEYS:
        address = payload.get(key)
        if isinstance(address, dict):
            country = next(
                (
                    str(address[k])
                    for k in _COUNTRY_KEYS
                    if isinstance(address.get(k), str) and len(address[k]) == 2
                ),
                None,
            )
            if country:
                province = next(
                    (
                        str(address[k])
                        for k in _PROVINCE_KEYS
                        if isinstance(address.get(k), str) and 1 <= len(address[k]) <= 3
                    ),
                    None,
                )
                return country.upper(), province.upper() if province else None
    for value in payload.values():  # wrapped payloads: {"data": {...}}, {"cart_data": {...}}
        if isinstance(value, dict):
            found = _address_in(value, depth + 1)
            if found:
                return found
    return None


def cart_address(conn: psycopg.Connection, cart: dict) -> tuple[str | None, str | None]:
    """(ISO country, province code) from the newest raw event of the cart that carries a
    shipping or billing address (Shopify, WooCommerce, BigCommerce shapes); (None, None)."""
    rows = conn.execute(
        "SELECT payload FROM raw.events WHERE org_id = %s AND cart_id = %s "
        "ORDER BY received_at DESC LIMIT %s",
        (cart["org_id"], cart["cart_id"], _ADDRESS_EVENTS),
    ).fetchall()
    for row in rows:
        found = _address_in(row["payload"])
        if found:
            return found
    return None, None
