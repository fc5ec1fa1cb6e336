"""Customers of an org: found or created from the carts and orders that name them.

A customer is keyed by email (lower-cased, unique per org), else found by phone or the
store's customer id. Known fields are filled in, never erased.
"""

from __future__ import annotations

from uuid import UUID

import psycopg

from .canonical import CanonicalCart, normalize_email, normalize_phone
from .sql_rows import rows_from

CUSTOMER_FIELDS = (
    "phone",
    "first_name",
    "last_name",
    "external_id",
    "timezone",
    "accepts_marketing",
)


def upsert_customer(
    conn: psycopg.Connection,
    org_id: UUID,
    *,
    email: str | None = None,
    phone: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    external_id: str | None = None,
    timezone: str | None = None,
    accepts_marketing: bool | None = None,
) -> UUID | None:
    """Find or create the org's customer for ``email`` (lower-cased, unique per org), or, with
    no email, for ``phone``/``external_id``. Known fields are filled in, never erased.
    Returns None when there is nothing to identify a customer by."""
    fields = dict(
        phone=normalize_phone(phone),
        first_name=first_name,
        last_name=last_name,
        external_id=external_id,
        timezone=timezone,
        accepts_marketing=accepts_marketing,
    )
    email = normalize_email(email)
    if email:
        return upsert_customers_by_email(conn, org_id, {email: fields})[email]
    if not fields["phone"] and not external_id:
        return None
    row = conn.execute(
        """
        SELECT customer_id FROM app.customers
        WHERE org_id = %s AND email IS NULL
          AND (phone = %s OR external_id = %s)
        ORDER BY created_at LIMIT 1
        """,
        (org_id, fields["phone"], external_id),
    ).fetchone()
    if row:
        conn.execute(
            f"UPDATE app.customers SET {_coalesce_assignments()}, updated_at = now() "
            "WHERE org_id = %(org_id)s AND customer_id = %(customer_id)s",
            {**fields, "org_id": org_id, "customer_id": row["customer_id"]},
        )
        return row["customer_id"]
    return conn.execute(
        "INSERT INTO app.customers (org_id, phone, first_name, last_name, external_id, "
        "timezone, accepts_marketing) VALUES (%(org_id)s, %(phone)s, %(first_name)s, "
        "%(last_name)s, %(external_id)s, %(timezone)s, %(accepts_marketing)s) "
        "RETURNING customer_id",
        {**fields, "org_id": org_id},
    ).fetchone()["customer_id"]


def _coalesce_assignments() -> str:
    return ", ".join(f"{f} = COALESCE(%({f})s, {f})" for f in CUSTOMER_FIELDS)


_CUSTOMER_ROW = (
    ("email", "text"),
    ("phone", "text"),
    ("first_name", "text"),
    ("last_name", "text"),
    ("external_id", "text"),
    ("timezone", "text"),
    ("accepts_marketing", "boolean"),
)


def customers_sql(where: str = "", many: bool = True) -> str:
    # ``where`` gates the rows (the fused statement).
    return f"""
        INSERT INTO app.customers AS cu
            (org_id, email, phone, first_name, last_name, external_id, timezone,
             accepts_marketing)
        SELECT %b, t.* FROM {rows_from(_CUSTOMER_ROW, many)}
        {where}
        ON CONFLICT (org_id, email) WHERE email IS NOT NULL DO UPDATE SET
            phone = COALESCE(EXCLUDED.phone, cu.phone),
            first_name = COALESCE(EXCLUDED.first_name, cu.first_name),
            last_name = COALESCE(EXCLUDED.last_name, cu.last_name),
            external_id = COALESCE(EXCLUDED.external_id, cu.external_id),
            timezone = COALESCE(EXCLUDED.timezone, cu.timezone),
            accepts_marketing = COALESCE(EXCLUDED.accepts_marketing, cu.accepts_marketing),
            updated_at = now()
        RETURNING email, customer_id"""


_UPSERT_CUSTOMERS = customers_sql()


def customer_params(org_id: UUID, by_email: dict[str, dict]) -> tuple:
    emails = sorted(by_email)  # lock order, as for carts
    return (org_id, emails, *([by_email[e].get(f) for e in emails] for f in CUSTOMER_FIELDS))


def upsert_customers_by_email(
    conn: psycopg.Connection, org_id: UUID, by_email: dict[str, dict]
) -> dict[str, UUID]:
    """One statement for many customers keyed by (already normalised) email."""
    if not by_email:
        return {}
    rows = conn.execute(_UPSERT_CUSTOMERS, customer_params(org_id, by_email)).fetchall()
    return {r["email"]: r["customer_id"] for r in rows}


def customer_fields(cart: CanonicalCart) -> dict:
    return dict(
        phone=cart.phone,
        first_name=cart.first_name,
        last_name=cart.last_name,
        external_id=cart.customer_external_id,
        timezone=cart.timezone,
        accepts_marketing=cart.accepts_marketing,
    )
