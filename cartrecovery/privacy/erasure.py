"""GDPR erasure: of one data subject, or of everything a store connection sent.

Both run inside the caller's tenant transaction (``Database.tenant(org_id)``), so an erasure
happens completely or not at all:

1. The subject (``privacy.subject.resolve_subject``).
2. *Linked rows* of every table (``privacy.schema.link_condition``) are **anonymised, not
   deleted**, so analytics counts (carts abandoned, messages sent, revenue recovered)
   survive: personal-data columns (contact columns, names, ip, user agent, plus a few known per
   table: restore links, the store's customer id, rendered subject lines, clicked URLs,
   provider event payloads) are set to NULL. A row whose personal-data column is NOT NULL
   (nothing left to keep) is deleted, and so are rows of tables that are nothing but personal
   data (``DELETE_TABLES``: the rendered local mailbox, push subscriptions). Line items are
   product facts and are kept.
3. *Scrub*: every text/json column of every table is searched for the email and the phone; a
   matching text value is replaced by ``REDACTED``, a matching JSON document rewritten
   (``privacy.subject.scrub_json``). Raw events linked to the subject (their cart, or the
   address in the payload) also lose every value under personal keys (``PERSONAL_KEYS``).
4. Suppressions: an erased subject who had unsubscribed must stay suppressed, so their
   suppressions are kept under a salted hash (``cartrecovery.suppressions``).
5. A record in ``app.erasure_requests``: the subject's salted hash, who asked, why, the counts.

Append-only tables (the consent ledger, the audit log) let an erasure through only when the
transaction-local setting ``app.erasure`` is 'on', which both functions set.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from .. import applier, suppressions
from ..canonical import normalize_email, normalize_phone
from ..privacy_salts import org_salt
from .schema import (
    JSON_TYPES,
    NOT_LINKED,
    PERSONAL_COLUMN,
    Column,
    Table,
    link_condition,
    search_condition,
    tables,
)
from .subject import REDACTED, Subject, mentions, phone_variants, resolve_subject, scrub_json

log = logging.getLogger(__name__)

ERASURE_SETTING = "app.erasure"


# Known semantics beyond the column names.
EXTRA_PERSONAL = {
    "app.customers": {"external_id", "timezone"},
    "app.carts": {"restore_url"},  # a live link into the checkout, with its address
    "app.outbox": {"subject"},  # a rendered subject line may carry the first name
    "app.message_events": {"url"},  # a clicked URL may carry a token
}


EMPTY_JSON = {"app.message_events": {"payload"}}  # provider payloads: email, ip, user agent

# Tables that are nothing but personal data: linked rows go. data_requests holds the export
# bundles prepared for a platform's data request (the subject's whole record).
# Outgoing webhook deliveries about the subject's carts go too: a pending one must not carry
# their data out after the erasure.
DELETE_TABLES = {
    "app.local_mailbox",
    "app.push_subscriptions",
    "app.data_requests",
    "app.webhook_deliveries",
}

# Append-only tables refuse UPDATE (their trigger lets an erasure DELETE): a row still
# mentioning the subject after the linking step is deleted, not rewritten.
APPEND_ONLY = {"app.consents"}


def _pk_condition(table: Table, row: dict) -> tuple[sql.Composable, list]:
    cond = sql.SQL(" AND ").join(
        sql.SQL("{} = %s").format(sql.Identifier(c)) for c in table.primary_key
    )
    return cond, [row[c] for c in table.primary_key]


def _scrub_table(
    conn: psycopg.Connection,
    org_id: UUID,
    table: Table,
    subject: Subject,
    *,
    personal_keys_where: set[UUID] | None = None,
) -> int:
    """Rewrite every value of ``table`` mentioning the subject. Returns rows changed."""
    found = search_condition(table, subject)
    linked_raw = table.qualified == "raw.events" and personal_keys_where is not None
    if found is None and not linked_raw:
        return 0
    condition, params = found if found else (sql.SQL("false"), [])
    if linked_raw:
        condition = sql.SQL("({} OR cart_id = ANY(%s))").format(condition)
        params = [*params, list(personal_keys_where)]
    cols = table.text_columns()
    rows = conn.execute(
        sql.SQL("SELECT {cols} FROM {table} WHERE org_id = %s AND {cond}").format(
            cols=sql.SQL(", ").join(
                sql.Identifier(c)
                for c in {
                    *table.primary_key,
                    *(c.name for c in cols),
                    *(["cart_id"] if linked_raw else []),
                }
            ),
            table=table.ident,
            cond=condition,
        ),
        [org_id, *params],
    ).fetchall()
    changed_rows = 0
    for row in rows:
        # A raw event about the subject (their cart, or their address inside) loses the values
        # under personal keys as well: the shipping address names no email.
        about_subject = linked_raw and (
            row.get("cart_id") in (personal_keys_where or set())
            or any(mentions(row[c.name], subject) for c in cols)
        )
        updates: dict[str, Any] = {}
        for column in cols:
            value = row[column.name]
            if value is None:
                continue
            if column.type in JSON_TYPES:
                new, changed = scrub_json(value, subject, personal_keys=bool(about_subject))
                if changed:
                    updates[column.name] = Jsonb(new)
            elif subject.matches_text(value):
                if column.name in table.primary_key or column.not_null:
                    # Unique per row, so two redacted keys cannot collide.
                    updates[column.name] = f"{REDACTED}:{secrets.token_hex(8)}"
                else:
                    updates[column.name] = None
        if updates and table.qualified in APPEND_ONLY:
            pk_cond, pk_params = _pk_condition(table, row)
            conn.execute(
                sql.SQL("DELETE FROM {table} WHERE org_id = %s AND {pk}").format(
                    table=table.ident, pk=pk_cond
                ),
                [org_id, *pk_params],
            )
            changed_rows += 1
        elif updates:
            pk_cond, pk_params = _pk_condition(table, row)
            conn.execute(
                sql.SQL("UPDATE {table} SET {sets} WHERE org_id = %s AND {pk}").format(
                    table=table.ident,
                    sets=sql.SQL(", ").join(
                        sql.SQL("{} = %s").format(sql.Identifier(c)) for c in updates
                    ),
                    pk=pk_cond,
                ),
                [*updates.values(), org_id, *pk_params],
            )
            changed_rows += 1
    return changed_rows


def subject_hash(
    conn: psycopg.Connection, org_id: UUID, *, email: str | None, phone: str | None
) -> str:
    """A salted hash naming the subject in records that must hold no PII."""
    salt = org_salt(conn, org_id, create=True)
    parts = [normalize_email(email) or "", normalize_phone(phone) or ""]
    return hmac.new(salt, "|".join(parts).encode(), hashlib.sha256).hexdigest()


def _enable_erasure(conn: psycopg.Connection) -> None:
    conn.execute("SELECT set_config(%s, 'on', true)", (ERASURE_SETTING,))


def _personal_columns(table: Table) -> list[Column]:
    extra = EXTRA_PERSONAL.get(table.qualified, set())
    return [
        c
        for c in table.columns.values()
        if c.name not in table.primary_key
        and c.name != "org_id"
        and (PERSONAL_COLUMN.search(c.name) or c.name in extra)
    ]


def _anonymise_linked(
    conn: psycopg.Connection, org_id: UUID, table: Table, subject: Subject
) -> int:
    found = link_condition(table, subject)
    if found is None:
        return 0
    condition, params = found
    where = sql.SQL("org_id = %s AND ") + condition
    if table.qualified in DELETE_TABLES:
        return conn.execute(
            sql.SQL("DELETE FROM {} WHERE ").format(table.ident) + where, [org_id, *params]
        ).rowcount
    personal = _personal_columns(table)
    empty_json = EMPTY_JSON.get(table.qualified, set())
    required = [c for c in personal if c.not_null]
    deleted = 0
    if required:
        # Nothing to keep once the required personal value is gone.
        deleted = conn.execute(
            sql.SQL("DELETE FROM {} WHERE ").format(table.ident) + where, [org_id, *params]
        ).rowcount
        return deleted
    sets = [sql.SQL("{} = NULL").format(sql.Identifier(c.name)) for c in personal]
    sets += [
        sql.SQL("{} = '{{}}'").format(sql.Identifier(name))
        for name in empty_json
        if name in table.columns
    ]
    if "updated_at" in table.columns:
        sets.append(sql.SQL("updated_at = now()"))
    if not sets:
        return 0
    return conn.execute(
        sql.SQL("UPDATE {} SET ").format(table.ident)
        + sql.SQL(", ").join(sets)
        + sql.SQL(" WHERE ")
        + where,
        [org_id, *params],
    ).rowcount


def erase_subject(
    conn: psycopg.Connection,
    org_id: UUID,
    *,
    email: str | None = None,
    phone: str | None = None,
    reason: str,
    requested_by: str,
) -> dict:
    """Erase everything held about the subject named by ``email`` and/or ``phone`` in the
    org, in the caller's tenant transaction; record the erasure (no PII) in
    ``app.erasure_requests``. Returns ``{"erasure_id", "counts": {table: rows changed}}``.
    Raises ValueError when neither email nor phone is given."""
    # Acknowledged changes not applied yet hold the subject's data too: apply them first, so
    # the erasure below finds every row they create (and no pending row is left).
    applier.drain(conn, org_id)
    subject = resolve_subject(conn, org_id, email=email, phone=phone)
    _enable_erasure(conn)
    hashed = subject_hash(conn, org_id, email=email, phone=phone)
    counts: dict[str, int] = {}
    counts["app.suppressions"] = suppressions.hash_for_erasure(
        conn, org_id, subject.emails, subject.phones
    )
    all_tables = tables(conn)
    for table in all_tables:
        if table.qualified in NOT_LINKED:
            continue
        changed = _anonymise_linked(conn, org_id, table, subject)
        if changed:
            counts[table.qualified] = counts.get(table.qualified, 0) + changed
    for table in all_tables:
        changed = _scrub_table(conn, org_id, table, subject, personal_keys_where=subject.cart_ids)
        if changed:
            counts[table.qualified] = counts.get(table.qualified, 0) + changed
    counts = {k: v for k, v in counts.items() if v}
    safe_reason = REDACTED if subject.matches_text(reason) else reason
    safe_by = REDACTED if subject.matches_text(requested_by) else requested_by
    row = conn.execute(
        "INSERT INTO app.erasure_requests (org_id, subject_hash, kind, requested_by, reason, "
        "counts) VALUES (%s, %s, 'subject', %s, %s, %s) RETURNING erasure_id",
        (org_id, hashed, safe_by, safe_reason, Jsonb(counts)),
    ).fetchone()
    log.info("erased subject %s in org %s: %s", hashed[:12], org_id, counts)
    return {"erasure_id": str(row["erasure_id"]), "subject_hash": hashed, "counts": counts}


def erase_connection_data(
    conn: psycopg.Connection,
    org_id: UUID,
    connection_id: UUID,
    *,
    reason: str,
    requested_by: str = "system",
) -> dict:
    """Delete everything the store behind ``connection_id`` sent: its carts and every row of
    any table linked to them (messages, mailbox, events, recoveries, coupons, push
    subscriptions…), rows of any table naming the connection, its orders, raw events and their
    dedup keys, and the customers known only through it — with every row about them
    (consents, data requests…) and any mention of their addresses elsewhere (scrubbed as in
    :func:`erase_subject`; their suppressions are kept as hashes). The org and the connection
    row stay (the caller decides its status). Returns ``{"erasure_id", "counts"}``."""
    applier.drain(conn, org_id)  # as in erase_subject
    _enable_erasure(conn)
    all_tables = {t.qualified: t for t in tables(conn)}
    counts: dict[str, int] = {}

    def add(name: str, n: int) -> None:
        if n:
            counts[name] = counts.get(name, 0) + n

    cart_ids = [
        r["cart_id"]
        for r in conn.execute(
            "SELECT cart_id FROM app.carts WHERE org_id = %s AND connection_id = %s",
            (org_id, connection_id),
        ).fetchall()
    ]
    customer_ids = {
        r["customer_id"]
        for r in conn.execute(
            "SELECT customer_id FROM app.carts WHERE org_id = %s AND connection_id = %s "
            "AND customer_id IS NOT NULL UNION SELECT customer_id FROM app.orders "
            "WHERE org_id = %s AND connection_id = %s AND customer_id IS NOT NULL",
            (org_id, connection_id, org_id, connection_id),
        ).fetchall()
    }
    # Customers with carts or orders from another store stay.
    shared = {
        r["customer_id"]
        for r in conn.execute(
            "SELECT customer_id FROM app.carts WHERE org_id = %s AND customer_id = ANY(%s) "
            "AND connection_id IS DISTINCT FROM %s UNION SELECT customer_id FROM app.orders "
            "WHERE org_id = %s AND customer_id = ANY(%s) AND connection_id IS DISTINCT FROM %s",
            (org_id, list(customer_ids), connection_id, org_id, list(customer_ids), connection_id),
        ).fetchall()
    }
    only_here = list(customer_ids - shared)
    message_ids = [
        r["message_id"]
        for r in conn.execute(
            "SELECT message_id FROM app.outbox WHERE org_id = %s AND cart_id = ANY(%s)",
            (org_id, cart_ids),
        ).fetchall()
    ]

    people = Subject(
        customer_ids=set(only_here), cart_ids=set(cart_ids), message_ids=set(message_ids)
    )
    for person in conn.execute(
        "SELECT email, phone FROM app.customers WHERE org_id = %s AND customer_id = ANY(%s)",
        (org_id, only_here),
    ).fetchall():
        if person["email"]:
            people.emails.add(person["email"].lower())
        if person["phone"]:
            people.phones |= phone_variants(person["phone"])
    if people.emails or people.phones:
        add(
            "app.suppressions",
            suppressions.hash_for_erasure(conn, org_id, people.emails, people.phones),
        )

    skip = {
        "app.carts",
        "app.customers",
        "app.orders",
        "app.connections",
        "raw.events",
        "raw.event_keys",
    } | NOT_LINKED
    for name, table in all_tables.items():
        if name in skip or "connection_id" not in table.columns:
            continue
        add(
            name,
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE org_id = %s AND connection_id = %s").format(
                    table.ident
                ),
                (org_id, connection_id),
            ).rowcount,
        )
    # Dependents first: every row linked to a message, cart or customer being deleted, or
    # naming one of the customers' addresses.
    for name, table in all_tables.items():
        if name in skip:
            continue
        found = link_condition(table, people)
        if found is not None:
            condition, params = found
            add(
                name,
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE org_id = %s AND ").format(table.ident)
                    + condition,
                    [org_id, *params],
                ).rowcount,
            )
    add(
        "app.orders",
        conn.execute(
            "DELETE FROM app.orders WHERE org_id = %s"
            " AND (connection_id = %s OR cart_id = ANY(%s))",
            (org_id, connection_id, cart_ids),
        ).rowcount,
    )
    add(
        "app.carts",
        conn.execute(
            "DELETE FROM app.carts WHERE org_id = %s AND connection_id = %s",
            (org_id, connection_id),
        ).rowcount,
    )
    add(
        "app.customers",
        conn.execute(
            "DELETE FROM app.customers WHERE org_id = %s AND customer_id = ANY(%s)",
            (org_id, only_here),
        ).rowcount,
    )
    add(
        "raw.event_keys",
        conn.execute(
            "DELETE FROM raw.event_keys k USING raw.events e WHERE k.org_id = %s "
            "AND e.org_id = k.org_id AND e.event_id = k.event_id "
            "AND (e.connection_id = %s OR e.cart_id = ANY(%s))",
            (org_id, connection_id, cart_ids),
        ).rowcount,
    )
    add(
        "raw.events",
        conn.execute(
            "DELETE FROM raw.events WHERE org_id = %s"
            " AND (connection_id = %s OR cart_id = ANY(%s))",
            (org_id, connection_id, cart_ids),
        ).rowcount,
    )
    if people.emails or people.phones:
        # Whatever still mentions them (a tracking event without a cart, a webhook body…).
        for table in all_tables.values():
            add(
                table.qualified,
                _scrub_table(conn, org_id, table, people, personal_keys_where=set()),
            )
    row = conn.execute(
        "INSERT INTO app.erasure_requests (org_id, subject_hash, kind, requested_by, reason, "
        "counts) VALUES (%s, %s, 'connection', %s, %s, %s) RETURNING erasure_id",
        (org_id, f"connection:{connection_id}", requested_by, reason, Jsonb(counts)),
    ).fetchone()
    log.info("erased connection %s data in org %s: %s", connection_id, org_id, counts)
    return {"erasure_id": str(row["erasure_id"]), "counts": counts}
