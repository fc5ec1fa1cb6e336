"""The send-time compliance gate: re-checked inside the transaction that holds the row lock.

Whatever was true when the message was scheduled, the customer may have bought, unsubscribed
or bounced since; this is the last look before anything leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Decision:
    status: str  # 'cancelled' or 'held'
    reason: str


def check(conn: psycopg.Connection, message: dict, cart: dict | None) -> Decision | None:
    """Return why ``message`` must not go out, or None if it may be sent.

    Converted or recovered cart (or a cart that no longer exists) → cancelled 'cart_converted';
    no recipient → held 'no_recipient'; recipient suppressed on the channel → held
    'suppressed:<reason>'.
    """
    if cart is None:
        return Decision("cancelled", "cart_missing")
    if cart["status"] in ("converted", "recovered"):
        return Decision("cancelled", "cart_converted")
    recipient = (message.get("recipient") or "").strip()
    if not recipient:
        return Decision("held", "no_recipient")
    row = conn.execute(
        "SELECT reason FROM app.suppressions WHERE org_id = %s AND channel = %s AND address = %s",
        (message["org_id"], message["channel"], normalize_address(message["channel"], recipient)),
    ).fetchone()
    if row is not None:
        return Decision("held", f"suppressed:{row['reason']}")
    return None


def normalize_address(channel: str, address: str) -> str:
    """Addresses are compared lower-cased for email (how suppressions are stored)."""
    address = address.strip()
    return address.lower() if channel == "email" else address
