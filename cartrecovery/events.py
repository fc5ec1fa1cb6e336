"""Inbound events stored exactly once: ``raw.event_keys`` decides, ``raw.events`` keeps them.

Every inbound event (webhook delivery, tracking call, provider callback) carries a key: the
platform's delivery id, the caller's event id, or a hash of the body. The key is claimed in
``raw.event_keys`` (a plain table, so the unique key works across monthly partitions); only
the first claim appends the event to ``raw.events``. Keys are namespaced by source
(``shopify:<webhook id>``), so two sources can never collide on an id.

All functions take a psycopg connection inside the caller's tenant transaction, so the event
and the state it changes commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb


def body_hash(body: bytes) -> str:
    """The fallback dedup key when a sender gives no event id: SHA-256 of the body, hex."""
    return hashlib.sha256(body).hexdigest()


def canonical_json(value: Any) -> bytes:
    """A stable encoding of parsed JSON, so the same event hashes the same whatever its
    whitespace or key order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def _unstorable(text: str) -> bool:
    # Postgres text/jsonb refuse NUL, and a lone surrogate (JSON "\ud800") is not UTF-8.
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# What a JSON text needs to carry NUL or a lone surrogate once parsed: a \u0000 or \uD800-\uDFFF
# escape (any case), or UTF-8-encoded surrogate bytes (json.loads decodes bytes with
# "surrogatepass"). A raw NUL byte cannot be in valid UTF-8 JSON, and means UTF-16/32 text,
# which this test cannot read: it counts as a hit too.
_MAYBE_UNSTORABLE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])|\xed[\xa0-\xbf]|\x00")


def may_hold_unstorable(body: bytes) -> bool:
    """Whether JSON ``body`` might hold text Postgres cannot store; False is certain, so a
    caller may skip :func:`find_nul` on what it parsed (a few µs instead of a walk)."""
    return _MAYBE_UNSTORABLE.search(body) is not None


def find_nul(value: Any, path: str = "$") -> str | None:
    """Where parsed JSON holds text Postgres cannot store (a NUL character or a lone
    surrogate), or None. Callers answer 400 for it instead of failing in the database."""
    if isinstance(value, str):
        return path if _unstorable(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _unstorable(key):
                return path
            found = find_nul(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_nul(item, f"{path}[{index}]")
            if found:
                return found
    return None


def namespaced_key(source: str, dedup_key: str) -> str:
    return f"{source}:{dedup_key}"


def claim_query(org_id: UUID, source: str, dedup_key: str) -> tuple[str, tuple]:
    """(sql, params) of :func:`claim_event`'s statement: one row ``event_id`` when the key is
    new, none when it was claimed before (e.g. a prelude of ``Database.tenant_with``)."""
    return (
        "INSERT INTO raw.event_keys (org_id, dedup_key, event_id) "
        "VALUES (%s, %s, gen_random_uuid()) ON CONFLICT DO NOTHING RETURNING event_id",
        (org_id, namespaced_key(source, dedup_key)),
    )


def claim_event(conn: psycopg.Connection, org_id: UUID, source: str, dedup_key: str) -> UUID | None:
    """Claim ``dedup_key`` for ``source``: a new event id the first time, None ever after.

    A concurrent claim of the same key waits on the unique index until the first transaction
    ends, so exactly one of them gets an id.
    """
    row = conn.execute(*claim_query(org_id, source, dedup_key)).fetchone()
    return _value(row, "event_id")


def append_event(
    conn: psycopg.Connection,
    event_id: UUID,
    *,
    org_id: UUID,
    source: str,
    topic: str,
    dedup_key: str,
    payload: Any,
    headers: dict | None = None,
    connection_id: UUID | None = None,
    cart_id: UUID | None = None,
    occurred_at: datetime | None = None,
) -> None:
    """Append a claimed event (``event_id`` from :func:`claim_event`) to ``raw.events``."""
    conn.execute(
        """
        INSERT INTO raw.events (org_id, event_id, source, topic, connection_id, cart_id,
                                dedup_key, occurred_at, payload, headers)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            org_id,
            event_id,
            source,
            topic,
            connection_id,
            cart_id,
            namespaced_key(source, dedup_key),
            occurred_at,
            Jsonb(payload),
            Jsonb(headers or {}),
        ),
    )


def store_event(
    conn: psycopg.Connection,
    *,
    org_id: UUID,
    source: str,
    topic: str,
    dedup_key: str,
    payload: Any,
    headers: dict | None = None,
    connection_id: UUID | None = None,
    cart_id: UUID | None = None,
    occurred_at: datetime | None = None,
) -> UUID | None:
    """Store an inbound event exactly once.

    Returns the new event id, or None when ``(source, dedup_key)`` was already stored for this
    org, in which case nothing at all is written. Callers that only learn the cart after
    applying the event use :func:`claim_event` then :func:`append_event` instead.
    """
    event_id = claim_event(conn, org_id, source, dedup_key)
    if event_id is not None:
        append_event(
            conn,
            event_id,
            org_id=org_id,
            source=source,
            topic=topic,
            dedup_key=dedup_key,
            payload=payload,
            headers=headers,
            connection_id=connection_id,
            cart_id=cart_id,
            occurred_at=occurred_at,
        )
    return event_id


def existing_event_id(
    conn: psycopg.Connection, org_id: UUID, source: str, dedup_key: str
) -> UUID | None:
    """The id under which an already stored key was recorded (to answer a duplicate)."""
    row = conn.execute(
        "SELECT event_id FROM raw.event_keys WHERE org_id = %s AND dedup_key = %s",
        (org_id, namespaced_key(source, dedup_key)),
    ).fetchone()
    return _value(row, "event_id")


@dataclass
class EventRow:
    """One event of a batch (see :func:`claim_events` / :func:`append_events`)."""

    source: str
    topic: str
    dedup_key: str
    payload: Any
    headers: dict = field(default_factory=dict)
    connection_id: UUID | None = None
    cart_id: UUID | None = None
    occurred_at: datetime | None = None
    event_id: UUID | None = None


def claim_events(
    conn: psycopg.Connection, org_id: UUID, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], UUID]:
    """Claim many ``(source, dedup_key)`` pairs in one statement.

    Returns the pairs that were new, with their event ids; pairs already stored (or repeated
    in ``keys``) get one id at most.
    """
    if not keys:
        return {}
    unique = list(dict.fromkeys(namespaced_key(s, k) for s, k in keys))
    # Arrays go as binary parameters (%b): the text format escapes every element in Python.
    rows = conn.execute(
        """
        INSERT INTO raw.event_keys (org_id, dedup_key, event_id)
        SELECT %b, k, gen_random_uuid() FROM unnest(%b::text[]) AS t(k)
        ON CONFLICT DO NOTHING
        RETURNING dedup_key, event_id
        """,
        (org_id, unique),
    ).fetchall()
    claimed = {r["dedup_key"]: r["event_id"] for r in rows}
    return {
        (s, k): claimed[namespaced_key(s, k)] for s, k in keys if namespaced_key(s, k) in claimed
    }


def append_events(conn: psycopg.Connection, org_id: UUID, events: Sequence[EventRow]) -> None:
    """Append claimed events (each with ``event_id`` set) in one set-based statement."""
    if not events:
        return
    conn.execute(
        """
        INSERT INTO raw.events (org_id, event_id, source, topic, connection_id, cart_id,
                                dedup_key, occurred_at, payload, headers)
        SELECT %b, t.event_id, t.source, t.topic, t.connection_id, t.cart_id, t.dedup_key,
               t.occurred_at, t.payload::jsonb, t.headers::jsonb
        FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::uuid[], %b::uuid[], %b::text[],
                    %b::timestamptz[], %b::text[], %b::text[])
             AS t(event_id, source, topic, connection_id, cart_id, dedup_key, occurred_at,
                  payload, headers)
        """,
        (
            org_id,
            [e.event_id for e in events],
            [e.source for e in events],
            [e.topic for e in events],
            [e.connection_id for e in events],
            [e.cart_id for e in events],
            [namespaced_key(e.source, e.dedup_key) for e in events],
            [e.occurred_at for e in events],
            [json.dumps(e.payload, default=str) for e in events],
            [json.dumps(e.headers) if e.headers else "{}" for e in events],
        ),
    )


def store_events(
    conn: psycopg.Connection, org_id: UUID, events: Sequence[EventRow]
) -> list[UUID | None]:
    """Bulk :func:`store_event`: two statements for the whole batch.

    Returns, per input event, its new id or None if it was a duplicate (of a stored event or
    of an earlier event in the same batch). Sets ``event_id`` on the stored ones.
    """
    claimed = claim_events(conn, org_id, [(e.source, e.dedup_key) for e in events])
    taken: set[tuple[str, str]] = set()
    ids: list[UUID | None] = []
    fresh: list[EventRow] = []
    for event in events:
        key = (event.source, event.dedup_key)
        if key in claimed and key not in taken:
            taken.add(key)
            event.event_id = claimed[key]
            fresh.append(event)
            ids.append(event.event_id)
        else:
            ids.append(None)
    append_events(conn, org_id, fresh)
    return ids


def _value(row: dict | None, column: str):
    return row[column] if row else None
