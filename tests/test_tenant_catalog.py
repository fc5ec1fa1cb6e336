"""Tenant isolation and Citus-readiness proven from the catalog, so tables added later are
covered without editing this file: every table with an ``org_id`` column in ``app``, ``raw``
and the dbt ``analytics_*`` schemas.

1. Connected as the application role for org B, no statement sees one of org A's rows
   (row-level security, or no privilege at all on the table).
2. Every tenant table's primary key and unique constraints start with ``org_id``.
"""

from __future__ import annotations

import psycopg
import pytest

from cartrecovery.db import APP_ROLE

TENANT_TABLES = """
SELECT c.table_schema, c.table_name
FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.column_name = 'org_id'
  AND t.table_type IN ('BASE TABLE', 'VIEW')
  AND (c.table_schema IN ('app', 'raw') OR c.table_schema LIKE 'analytics%%')
ORDER BY 1, 2
"""

# Tables whose rows are partitions of a parent the check already covers.
PARTITIONS = "SELECT inhrelid::regclass::text AS name FROM pg_inherits"


class _Rollback(Exception):
    pass


def _tables(conn) -> list[tuple[str, str]]:
    partitions = {r["name"] for r in conn.execute(PARTITIONS).fetchall()}
    return [
        (r["table_schema"], r["table_name"])
        for r in conn.execute(TENANT_TABLES).fetchall()
        if f"{r['table_schema']}.{r['table_name']}" not in partitions
    ]


@pytest.fixture()
def two_orgs_everywhere(db, make_org, client):
    """Orgs A and B, A with rows in as many tenant tables as the API and the core fill."""
    a, b = make_org("a"), make_org("b")
    for org, email in ((a, "a@example.com"), (b, "b@example.com")):
        response = client.post(
            "/api/v1/carts/track",
            headers=org.headers,
            json={
                "event": "cart_updated",
                "timestamp": "2026-01-01T00:00:00Z",
                "cart_data": {
                    "cart_id": f"cart-{org.org_id}",
                    "email": email,
                    "currency": "USD",
                    "total": 10,
                    "items": [{"sku": "s", "name": "n", "quantity": 1, "price": 10}],
                },
            },
        )
        assert response.status_code == 202, response.get_data(as_text=True)
        client.post(
            "/api/v1/campaigns",
            headers=org.headers,
            json={
                "name": "c",
                "sequence_steps": [
                    {
                        "channel": "email",
                        "delay_seconds": 0,
                        "subject": "s",
                        "template": "cart_reminder",
                    }
                ],
            },
        )
    return a, b


def test_app_role_sees_no_other_orgs_rows_in_any_tenant_table(db, two_orgs_everywhere):
    a, b = two_orgs_everywhere
    with db.system() as conn:
        tables = _tables(conn)
        with_a_rows = []
        for schema, table in tables:
            n = conn.execute(
                psycopg.sql.SQL("SELECT count(*) AS n FROM {}.{} WHERE org_id = %s").format(
                    psycopg.sql.Identifier(schema), psycopg.sql.Identifier(table)
                ),
                (a.org_id,),
            ).fetchone()["n"]
            if n:
                with_a_rows.append(f"{schema}.{table}")
    assert len(tables) >= 15 and "app.carts" in with_a_rows and "raw.events" in with_a_rows

    leaks, denied, protected = [], [], []
    for schema, table in tables:
        name = psycopg.sql.SQL("{}.{}").format(
            psycopg.sql.Identifier(schema), psycopg.sql.Identifier(table)
        )
        try:
            with db.tenant(b.org_id) as conn:
                assert conn.execute("SELECT current_user AS u").fetchone()["u"] == APP_ROLE
                other = conn.execute(
                    psycopg.sql.SQL(
                        "SELECT count(*) AS n FROM {} WHERE org_id IS DISTINCT FROM %s"
                    ).format(name),
                    (b.org_id,),
                ).fetchone()["n"]
        except psycopg.errors.InsufficientPrivilege:
            denied.append(f"{schema}.{table}")
            continue
        touched = 0
        try:
            # Writes cannot reach A's rows either (RLS filters UPDATE targets); rolled back.
            with db.tenant(b.org_id) as conn:
                touched = conn.execute(
                    psycopg.sql.SQL("UPDATE {} SET org_id = org_id WHERE org_id = %s").format(name),
                    (a.org_id,),
                ).rowcount
                raise _Rollback
        except (_Rollback, psycopg.errors.InsufficientPrivilege, psycopg.errors.RaiseException):
            pass
        if other or touched > 0:
            leaks.append((f"{schema}.{table}", other, touched))
        else:
            protected.append(f"{schema}.{table}")
    print(
        f"tenant tables {len(tables)}: protected by RLS {len(protected)}, "
        f"no privilege {len(denied)}, leaking {leaks}"
    )
    assert leaks == []


def test_every_tenant_key_starts_with_org_id(db):
    constraints = """
    SELECT n.nspname AS schema, t.relname AS table_name, c.conname, c.contype,
           (SELECT array_agg(a.attname ORDER BY k.ord)
              FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS columns
    FROM pg_constraint c
    JOIN pg_class t ON t.oid = c.conrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    WHERE c.contype IN ('p', 'u') AND n.nspname = %s AND t.relname = %s
    """
    unique_indexes = """
    SELECT i.relname AS index_name,
           (SELECT array_agg(a.attname ORDER BY k.ord)
              FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum) AS columns
    FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
    WHERE x.indisunique AND x.indrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass
    """
    wrong, checked = [], 0
    with db.system() as conn:
        for schema, table in _tables(conn):
            if schema.startswith("analytics"):
                continue  # dbt's relations carry no constraints
            for row in conn.execute(constraints, (schema, table)).fetchall():
                checked += 1
                if not row["columns"] or row["columns"][0] != "org_id":
                    wrong.append((f"{schema}.{table}", row["conname"], row["columns"]))
            for row in conn.execute(unique_indexes, (schema, table)).fetchall():
                checked += 1
                if not row["columns"] or row["columns"][0] != "org_id":
                    wrong.append((f"{schema}.{table}", row["index_name"], row["columns"]))
    print(f"primary keys, unique constraints and unique indexes checked: {checked}")
    assert checked > 15
    assert wrong == []
