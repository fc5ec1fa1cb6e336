"""Suppressions: addresses we must not message on a channel, and why.

This module is the only writer of ``app.suppressions`` (and ``app.global_suppressions``), so
every path (unsubscribe links, SendGrid events, STOP keywords, Twilio delivery errors,
erasure) follows one conflict rule:

**An address keeps the suppression that is hardest to lift.** Only two reasons can be lifted,
each by one action of the person themselves: ``stop`` (by START) and ``group_unsubscribe``
(by SendGrid's group resubscribe). Any other reason (``unsubscribe``, ``bounce``,
``dropped``, ``spamreport``, ``invalid_number``…) is lifted by nothing. So a new reason
replaces a stored liftable one (a bounce after a STOP stays suppressed after START), and
never replaces a stored reason that nothing lifts; between two liftable reasons the first
stays.

Forms of an address: as given and normalised (:func:`normalize_address`: email lower-cased,
phone E.164 where recognisable), and, for an erased subject, ``erased:<hex HMAC-SHA256(org
salt, channel:address)>`` (:func:`suppression_key`). Every lookup and lift uses
:func:`suppression_addresses`, which lists them all.

Global suppressions (:func:`suppress_everywhere`): an opt-out from an address no org knows
yet (a STOP texted to the shared sender) is kept as a salted hash outside any org and holds
for every org (:func:`is_suppressed`); an opt-in through the same channel lifts it.

Functions take a psycopg connection inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import psycopg

from .canonical import normalize_phone
from .privacy_salts import org_salt

# Reasons an action of the person lifts (see the module docstring); every other one is final.
LIFTABLE = frozenset({"stop", "group_unsubscribe"})
GLOBAL_SALT = "suppressions"

# The one conflict rule, for org and global suppressions alike.
_KEEP_HARDEST = """
    DO UPDATE SET reason = EXCLUDED.reason, created_at = EXCLUDED.created_at
    WHERE {table}.reason = ANY(%(liftable)s) AND NOT EXCLUDED.reason = ANY(%(liftable)s)
"""
_SUPPRESS = (
    "INSERT INTO app.suppressions AS s (org_id, channel, address, reason, created_at) "
    "VALUES (%(org)s, %(channel)s, %(address)s, %(reason)s, COALESCE(%(at)s, now())) "
    "ON CONFLICT (org_id, channel, address)" + _KEEP_HARDEST.format(table="s")
)
_SUPPRESS_GLOBAL = (
    "INSERT INTO app.global_suppressions AS s (channel, address_hash, reason, created_at) "
    "VALUES (%(channel)s, %(address)s, %(reason)s, COALESCE(%(at)s, now())) "
    "ON CONFLICT (channel, address_hash)" + _KEEP_HARDEST.format(table="s")
)


def normalize_address(channel: str, address: str) -> str:
    """How an address is compared: email lower-cased, phone E.164 where recognisable."""
    address = address.strip()
    if channel == "email" or "@" in address:
        return address.lower()
    if channel == "sms":
        return normalize_phone(address) or address
    return address


def suppress(
    conn: psycopg.Connection,
    org_id: UUID | str,
    channel: str,
    address: str,
    reason: str,
    *,
    at: datetime | None = None,
) -> None:
    """Suppress ``address`` (normalised) on ``channel`` for the org with ``reason``, by the
    module's one conflict rule."""
    _write(conn, org_id, channel, normalize_address(channel, address), reason, at)


def _write(conn, org_id, channel: str, stored: str, reason: str, at: datetime | None) -> None:
    conn.execute(
        _SUPPRESS,
        {
            "org": org_id,
            "channel": channel,
            "address": stored,
            "reason": reason,
            "at": at,
            "liftable": list(LIFTABLE),
        },
    )


def lift(
    conn: psycopg.Connection, org_id: UUID | str, channel: str, address: str, reason: str
) -> bool:
    """Lift the org's suppression of ``address`` on ``channel`` if its reason is ``reason``
    (one of ``LIFTABLE``), in every stored form; True when one was lifted."""
    if reason not in LIFTABLE:
        raise ValueError(f"a {reason!r} suppression is never lifted")
    row = conn.execute(
        "DELETE FROM app.suppressions WHERE org_id = %s AND channel = %s "
        "AND address = ANY(%s) AND reason = %s RETURNING address",
        (org_id, channel, suppression_addresses(conn, org_id, channel, address), reason),
    ).fetchone()
    return row is not None


def _erased_form(salt: bytes, channel: str, address: str) -> str:
    digest = hmac.new(
        salt, f"{channel}:{normalize_address(channel, address)}".encode(), hashlib.sha256
    ).hexdigest()
    return f"erased:{digest}"


def suppression_key(
    conn: psycopg.Connection, org_id: UUID, channel: str, address: str
) -> str | None:
    """The form an erased subject's address takes in ``app.suppressions``: ``erased:<hex
    HMAC-SHA256(org salt, channel:address)>``; None when the org never erased anyone."""
    salt = org_salt(conn, org_id, create=False)
    return _erased_form(salt, channel, address) if salt else None


def suppression_addresses(
    conn: psycopg.Connection, org_id: UUID, channel: str, address: str
) -> list[str]:
    """Every form ``address`` may have in ``app.suppressions``: as given, normalised, and
    its erased (hashed) form. Match with ``address = ANY(%s)`` wherever suppressions are
    looked up or lifted (the gate, START/resubscribe)."""
    keys = list(dict.fromkeys([address.strip(), normalize_address(channel, address)]))
    hashed = suppression_key(conn, org_id, channel, address)
    if hashed:
        keys.append(hashed)
    return keys


def is_suppressed(
    conn: psycopg.Connection, org_id: UUID | str, channel: str, address: str
) -> str | None:
    """The suppression reason for ``address`` on ``channel`` in the org (any stored form), or
    held for every org (:func:`suppress_everywhere`), else None. The send-time gate's lookup."""
    keys = suppression_addresses(conn, org_id, channel, address)
    row = conn.execute(
        "SELECT reason FROM app.suppressions WHERE org_id = %s AND channel = %s "
        "AND address = ANY(%s) LIMIT 1",
        (org_id, channel, keys),
    ).fetchone()
    if row is not None:
        return row["reason"]
    row = conn.execute(
        "SELECT reason FROM app.global_suppressions WHERE channel = %s AND address_hash = %s",
        (channel, _global_hash(conn, channel, address)),
    ).fetchone()
    return row["reason"] if row else None


def hash_for_erasure(
    conn: psycopg.Connection, org_id: UUID, emails: Iterable[str], phones: Iterable[str]
) -> int:
    """Replace the org's suppressions of these addresses by their erased form (reason and
    time kept), so an erased subject stays suppressed. Returns how many were replaced."""
    rows = conn.execute(
        "DELETE FROM app.suppressions WHERE org_id = %s "
        "AND (lower(address) = ANY(%s) OR address = ANY(%s)) "
        "RETURNING channel, address, reason, created_at",
        (org_id, list(emails), list(phones)),
    ).fetchall()
    if not rows:
        return 0
    salt = org_salt(conn, org_id, create=True)
    for row in rows:
        erased = _erased_form(salt, row["channel"], row["address"])
        _write(conn, org_id, row["channel"], erased, row["reason"], row["created_at"])
    return len(rows)


# --- held for every org --------------------------------------------------------------------


def _global_hash(conn: psycopg.Connection, channel: str, address: str) -> str:
    row = conn.execute(
        "SELECT salt FROM app.global_salts WHERE name = %s", (GLOBAL_SALT,)
    ).fetchone()
    digest = hmac.new(
        bytes(row["salt"]),
        f"{channel}:{normalize_address(channel, address)}".encode(),
        hashlib.sha256,
    ).hexdigest()
    return digest


def suppress_everywhere(conn: psycopg.Connection, channel: str, address: str, reason: str) -> None:
    """Suppress ``address`` on ``channel`` for every org, present and future, keeping only a
    salted hash of it (an opt-out from an address no org knows yet)."""
    conn.execute(
        _SUPPRESS_GLOBAL,
        {
            "channel": channel,
            "address": _global_hash(conn, channel, address),
            "reason": reason,
            "at": None,
            "liftable": list(LIFTABLE),
        },
    )


def lift_everywhere(conn: psycopg.Connection, channel: str, address: str, reason: str) -> bool:
    """Lift a suppression held for every org whose reason is ``reason``; True when lifted."""
    if reason not in LIFTABLE:
        raise ValueError(f"a {reason!r} suppression is never lifted")
    row = conn.execute(
        "DELETE FROM app.global_suppressions WHERE channel = %s AND address_hash = %s "
        "AND reason = %s RETURNING channel",
        (channel, _global_hash(conn, channel, address), reason),
    ).fetchone()
    return row is not None
