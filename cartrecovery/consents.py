"""The consent ledger: who agreed to (or withdrew from) which channel, when, how and where.

``app.consents`` is append-only (a database trigger refuses UPDATE and DELETE). The current
state of an address on a channel is its latest entry. GDPR erasure is the one exception: a
transaction that runs ``SELECT set_config('app.erasure', 'on', true)`` (see
:data:`ERASURE_SETTING`) may DELETE a subject's rows.

Addresses are stored normalised so that a withdrawal by SMS keyword matches a grant recorded at
checkout: emails trimmed and lower-cased, phone numbers in E.164.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import psycopg

from cartrecovery import phones
from cartrecovery.canonical import normalize_email

CHANNELS = ("email", "sms", "push")
STATUSES = ("granted", "withdrawn")
# Transaction-local setting that lets GDPR erasure delete ledger rows.
ERASURE_SETTING = "app.erasure"

Channel = Literal["email", "sms", "push"]
Status = Literal["granted", "withdrawn"]


class InvalidAddress(ValueError):
    """The address is not a valid email / phone number for the channel."""


def to_e164(value: str, default_region: str | None = None) -> str:
    """A phone number in E.164, or InvalidAddress when it is not one we can message (the
    one rule: ``cartrecovery.phones``)."""
    try:
        return phones.to_e164(value, default_region)
    except phones.InvalidPhone as exc:
        raise InvalidAddress(str(exc)) from None


def normalize_address(channel: str, address: str) -> str:
    """The ledger form of ``address`` on ``channel`` (InvalidAddress if it cannot be)."""
    if channel not in CHANNELS:
        raise InvalidAddress(f"unknown channel {channel!r}")
    if channel == "sms":
        return to_e164(address)
    if channel == "email":
        email = normalize_email(address)
        if not email or "@" not in email.strip("@"):
            raise InvalidAddress(f"not an email address: {address!r}")
        return email
    text = str(address).strip()
    if not text:
        raise InvalidAddress("empty push address")
    return text


def record_consent(
    conn: psycopg.Connection,
    org_id: UUID | str,
    *,
    channel: str,
    address: str,
    status: str,
    source: str,
    wording: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> UUID:
    """Append one ledger entry and return its consent_id.

    ``address`` is normalised (email lower-cased, phone E.164). Raises InvalidAddress for an
    address that is not valid for the channel and ValueError for an unknown status.
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    row = conn.execute(
        """
        INSERT INTO app.consents
            (org_id, channel, address, status, source, wording, ip, user_agent)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        RETURNING consent_id
        """,
        (
            org_id,
            channel,
            normalize_address(channel, address),
            status,
            source,
            wording,
            ip or None,
            user_agent,
        ),
    ).fetchone()
    return row["consent_id"]


def latest_consent(
    conn: psycopg.Connection, org_id: UUID | str, channel: str, address: str
) -> dict | None:
    """The most recent ledger entry for ``address`` on ``channel`` (normalised), or None."""
    try:
        normalized = normalize_address(channel, address)
    except InvalidAddress:
        return None
    return conn.execute(
        """
        SELECT consent_id, channel, address, status, source, wording, host(ip) AS ip,
               user_agent, recorded_at
        FROM app.consents
        WHERE org_id = %s AND channel = %s AND address = %s
        ORDER BY recorded_at DESC, consent_id DESC
        LIMIT 1
        """,
        (org_id, channel, normalized),
    ).fetchone()


def consent_status(
    conn: psycopg.Connection, org_id: UUID | str, channel: str, address: str
) -> str | None:
    """'granted', 'withdrawn', or None when the ledger holds nothing for the address."""
    row = latest_consent(conn, org_id, channel, address)
    return row["status"] if row else None


def history(
    conn: psycopg.Connection,
    org_id: UUID | str,
    channel: str | None = None,
    address: str | None = None,
    since: datetime | None = None,
    limit: int = 500,
) -> list[dict]:
    """Ledger entries, newest first, optionally for one channel / address."""
    normalized = None
    if address is not None and channel is not None:
        try:
            normalized = normalize_address(channel, address)
        except InvalidAddress:
            return []
    return conn.execute(
        """
        SELECT consent_id, channel, address, status, source, wording, host(ip) AS ip,
               user_agent, recorded_at
        FROM app.consents
        WHERE org_id = %s
          AND (%s::text IS NULL OR channel = %s)
          AND (%s::text IS NULL OR address = %s)
          AND (%s::timestamptz IS NULL OR recorded_at >= %s)
        ORDER BY recorded_at DESC, consent_id DESC
        LIMIT %s
        """,
        (org_id, channel, channel, normalized, normalized, since, since, limit),
    ).fetchall()
