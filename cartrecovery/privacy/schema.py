"""Which tables hold what: the ``app`` and ``raw`` schemas introspected through
``pg_catalog``, so a table added by a later migration is covered by erasure and export
without editing this package.

A row is *linked* to a subject when a contact column (name matching
email/phone/recipient/address) holds one of their addresses, or ``customer_id`` /
``cart_id`` / ``message_id`` is among their ids (:func:`link_condition`); a row *mentions*
them when any text/json value contains their email or phone (:func:`search_condition`, a
superset refined in Python with ``Subject.matches_text``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from .subject import Subject

SCHEMAS = ("app", "raw")


# Column names that hold a contact address: used to find the subject's rows and always nulled.
CONTACT_COLUMN = re.compile(r"(^|_)(email|phone|recipient|address)(_|$)")


# Further personal-data column names, nulled on linked rows.
PERSONAL_COLUMN = re.compile(
    r"(^|_)(email|phone|recipient|address|first_name|last_name|full_name|ip|ip_address"
    r"|user_agent)(_|$)"
)


LINK_COLUMNS = ("customer_id", "cart_id", "message_id")


TEXT_TYPES = {"text", "character varying", "citext"}


JSON_TYPES = {"jsonb", "json"}

# Tables whose rows are handled explicitly (or are not about a subject) in the linking step;
# the generic scrub still searches them.
NOT_LINKED = {
    "app.suppressions",
    "app.audit_log",
    "app.erasure_requests",
    "app.orgs",
    "app.api_keys",
    "app.connections",
    "app.campaigns",
    "app.privacy_salts",
    "raw.events",
    "raw.event_keys",
}


@dataclass
class Column:
    name: str
    type: str
    not_null: bool


@dataclass
class Table:
    schema: str
    name: str
    columns: dict[str, Column]
    primary_key: list[str]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.name)

    def text_columns(self) -> list[Column]:
        return [c for c in self.columns.values() if c.type in TEXT_TYPES | JSON_TYPES]


def tables(conn: psycopg.Connection) -> list[Table]:
    """Every table (partitioned parents, not their partitions) of the app and raw schemas that
    this connection may update and that carries an org_id."""
    rows = conn.execute(
        """
        SELECT n.nspname AS schema, c.relname AS name, a.attname AS column,
               format_type(a.atttypid, NULL) AS type, a.attnotnull AS not_null,
               COALESCE(a.attnum = ANY(pk.indkey::int2[]), false) AS in_pk
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary
        WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND has_table_privilege(c.oid, 'SELECT, UPDATE')
        ORDER BY n.nspname, c.relname, a.attnum
        """,
        (list(SCHEMAS),),
    ).fetchall()
    found: dict[str, Table] = {}
    for row in rows:
        key = f"{row['schema']}.{row['name']}"
        table = found.setdefault(key, Table(row["schema"], row["name"], {}, []))
        table.columns[row["column"]] = Column(row["column"], row["type"], row["not_null"])
        if row["in_pk"]:
            table.primary_key.append(row["column"])
    return [t for t in found.values() if "org_id" in t.columns and t.primary_key]


def is_linkable(table: Table) -> bool:
    """Whether rows of ``table`` can be about a subject: it has a contact column or one of
    ``LINK_COLUMNS`` (whatever the subject, so an export has the same keys for everyone)."""
    return any(
        (CONTACT_COLUMN.search(c.name) and c.type in TEXT_TYPES)
        or (c.name in LINK_COLUMNS and c.type == "uuid")
        for c in table.columns.values()
    )


def link_condition(table: Table, subject: Subject) -> tuple[sql.Composable, list] | None:
    parts: list[sql.Composable] = []
    params: list = []
    for column in table.columns.values():
        if CONTACT_COLUMN.search(column.name) and column.type in TEXT_TYPES:
            parts.append(
                sql.SQL("(lower({c}) = ANY(%s) OR {c} = ANY(%s))").format(
                    c=sql.Identifier(column.name)
                )
            )
            params += [list(subject.emails), list(subject.phones)]
    for name, ids in (
        ("customer_id", subject.customer_ids),
        ("cart_id", subject.cart_ids),
        ("message_id", subject.message_ids),
    ):
        if name in table.columns and ids and table.columns[name].type == "uuid":
            parts.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(name)))
            params.append(list(ids))
    if not parts:
        return None
    return sql.SQL("(") + sql.SQL(" OR ").join(parts) + sql.SQL(")"), params


def search_condition(table: Table, subject: Subject) -> tuple[sql.Composable, list] | None:
    """SQL that finds rows of ``table`` whose text/json columns mention the subject: a
    superset (the phone digits are looked for in the column's digits), refined in Python."""
    parts: list[sql.Composable] = []
    params: list = []
    email_patterns = [f"%{_like_escape(e)}%" for e in subject.emails]
    digit_patterns = [f"%{d}%" for d in subject.phone_digits]
    for column in table.text_columns():
        ident = sql.Identifier(column.name)
        if email_patterns:
            parts.append(sql.SQL("{}::text ILIKE ANY(%s)").format(ident))
            params.append(email_patterns)
        if digit_patterns:
            parts.append(
                sql.SQL("regexp_replace({}::text, '[^0-9]', '', 'g') LIKE ANY(%s)").format(ident)
            )
            params.append(digit_patterns)
    if not parts:
        return None
    return sql.SQL("(") + sql.SQL(" OR ").join(parts) + sql.SQL(")"), params


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
