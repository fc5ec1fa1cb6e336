"""GDPR: erase a data subject, export what is held about them, purge old raw payloads.

All functions take a psycopg connection inside the caller's tenant transaction
(``Database.tenant(org_id)``), so an erasure either happens completely or not at all.

How erasure finds personal data. The tables are *introspected* (``pg_catalog``: every table of
the ``app`` and ``raw`` schemas the connection may update), so a table added by a later
migration is covered without editing this module:

1. The subject: the given email/phone, widened by one hop through ``app.customers`` and
   ``app.carts`` (an email's customer also gives their phone and vice versa), plus the ids of
   their customers, carts and messages.
2. *Linked rows* of every table: a contact column (name matching email/phone/recipient/address)
   equal to one of the subject's addresses, or ``customer_id``/``cart_id``/``message_id`` among
   the subject's ids. Linked rows are **anonymised, not deleted**, so analytics counts
   (carts abandoned, messages sent, revenue recovered) survive: personal-data columns
   (contact columns, names, ip, user agent, plus a few known per table: restore links, the
   store's customer id, rendered subject lines, clicked URLs, provider event payloads) are set
   to NULL. A row whose personal-data column is NOT NULL (nothing left to keep) is deleted, and
   so are rows of tables that are nothing but personal data (``DELETE_TABLES``: the rendered
   local mailbox, push subscriptions). Line items are product facts and are kept.
3. *Scrub*: every text/json column of every table is searched for the email (any case) and
   the phone (any formatting: digits compared); a matching text value is replaced by
   ``REDACTED``, a matching JSON document is rewritten with every string (and key) containing
   the email/phone replaced by ``REDACTED``, recursively. Raw events linked to the subject
   (their cart, or the address in the payload) also lose every value under personal keys
   (names, addresses, ip, …; ``PERSONAL_KEYS``).
4. Suppressions: an erased subject who had unsubscribed must stay suppressed, so the address
   in ``app.suppressions`` is replaced by :func:`suppression_key` (an HMAC with a per-org random
   salt kept in ``app.privacy_salts``); :func:`is_suppressed` checks both forms.
5. A record in ``app.erasure_requests``: the subject's salted hash, who asked, why, the counts.

Append-only tables (the consent ledger, the audit log) let an erasure through only when the
transaction-local setting ``app.erasure`` is 'on', which :func:`erase_subject` sets.

Retention: ``app.orgs.settings->>'raw_retention_days'`` (default
``DEFAULT_RAW_RETENTION_DAYS``) — :func:`purge_raw_events` empties payloads and headers of raw
events older than that (the row, its topic and times stay for counts).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import phonenumbers
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from .canonical import normalize_email, normalize_phone

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
ERASURE_SETTING = "app.erasure"
DEFAULT_RAW_RETENTION_DAYS = 365
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
# Keys inside stored payloads that hold personal data of whoever the payload is about.
PERSONAL_KEYS = {
    "email",
    "contact_email",
    "phone",
    "first_name",
    "last_name",
    "address1",
    "address2",
    "city",
    "zip",
    "province",
    "province_code",
    "company",
    "latitude",
    "longitude",
    "browser_ip",
    "client_ip",
    "ip",
    "user_agent",
    "useragent",
    "note",
    "customer_locale",
    "billing_address",
    "shipping_address",
    "default_address",
    "addresses",
    "landing_site",
    "referring_site",
    "abandoned_checkout_url",
    "recovery_url",
    # request headers kept with an event: the shopper's address and browser
    "x-forwarded-for",
    "x-real-ip",
    "forwarded",
    "cf-connecting-ip",
    "true-client-ip",
    "user-agent",
    "remote_addr",
    "remote-addr",
}


# --- the subject -------------------------------------------------------------------------


@dataclass
class Subject:
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)  # as stored (E.164 where recognisable)
    customer_ids: set[UUID] = field(default_factory=set)
    cart_ids: set[UUID] = field(default_factory=set)
    message_ids: set[UUID] = field(default_factory=set)

    @property
    def phone_digits(self) -> set[str]:
        """Digit strings that identify the phones whatever their formatting: the national
        significant number when the phone parses, else all its digits."""
        return {d for d in (_phone_digits(p) for p in self.phones) if d}

    def matches_text(self, text: str) -> bool:
        lowered = text.lower()
        if any(email in lowered for email in self.emails):
            return True
        digits = re.sub(r"\D", "", text)
        if not digits:
            return False
        for wanted in self.phone_digits:
            # The string must be (mostly) the phone number, so a long numeric id that happens
            # to contain the digits is not mangled; PhoneNumberMatcher covers free text.
            if wanted in digits and len(digits) <= len(wanted) + 4:
                return True
        if any(wanted in digits for wanted in self.phone_digits):
            # Free text ("call 503-555-0123 about order 1234"): find the numbers in it, read
            # in the regions of the subject's own phones.
            if any(phone in text for phone in self.phones):
                return True
            return any(
                str(m.number.national_number) in self.phone_digits
                for region in self.phone_regions
                for m in phonenumbers.PhoneNumberMatcher(text, region)
            )
        return False

    @property
    def phone_regions(self) -> set[str]:
        regions = set()
        for phone in self.phones:
            try:
                region = phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
            except phonenumbers.NumberParseException:
                continue
            if region and region != "ZZ":
                regions.add(region)
        return regions or {"US"}


def _phone_digits(phone: str) -> str | None:
    try:
        number = phonenumbers.parse(phone, None)
        nsn = phonenumbers.national_significant_number(number)
    except phonenumbers.NumberParseException:
        nsn = re.sub(r"\D", "", phone)
    # Too short to identify anyone without mangling unrelated numbers.
    return nsn if len(nsn) >= 6 else None


def phone_variants(phone: str) -> set[str]:
    """How a phone may be stored: as given, E.164, and national/international formats."""
    variants = {phone.strip()}
    normalized = normalize_phone(phone)
    if normalized:
        variants.add(normalized)
    try:
        number = phonenumbers.parse(normalized or phone, None)
        for fmt in (
            phonenumbers.PhoneNumberFormat.E164,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            phonenumbers.PhoneNumberFormat.NATIONAL,
        ):
            variants.add(phonenumbers.format_number(number, fmt))
        variants.add(phonenumbers.national_significant_number(number))
    except phonenumbers.NumberParseException:
        pass
    return {v for v in variants if v}


def resolve_subject(
    conn: psycopg.Connection, org_id: UUID, *, email: str | None = None, phone: str | None = None
) -> Subject:
    """The subject's addresses and ids, widened one hop through customers and carts."""
    subject = Subject()
    if normalize_email(email):
        subject.emails.add(normalize_email(email))
    if phone and phone.strip():
        subject.phones |= phone_variants(phone)
    if not subject.emails and not subject.phones:
        raise ValueError("an email or a phone is required")
    if subject.phones:
        # A phone given without its country code ("(503) 555-0123") still finds the stored
        # E.164 form: stored phones whose digits end with the same national number.
        for table in ("app.customers", "app.carts"):
            for digits in subject.phone_digits:
                for row in conn.execute(
                    sql.SQL(
                        "SELECT DISTINCT phone FROM {} WHERE org_id = %s AND phone IS NOT NULL "
                        "AND right(regexp_replace(phone, '[^0-9]', '', 'g'), %s) = %s "
                        "AND length(regexp_replace(phone, '[^0-9]', '', 'g')) <= %s"
                    ).format(sql.SQL(table)),
                    (org_id, len(digits), digits, len(digits) + 3),
                ).fetchall():
                    subject.phones |= phone_variants(row["phone"])
    for table in ("app.customers", "app.carts", "app.orders"):
        has_phone = table != "app.orders"
        rows = conn.execute(
            sql.SQL(
                "SELECT email{phone}, customer_id FROM {table} WHERE org_id = %s "
                "AND (lower(email) = ANY(%s){phone_match})"
            ).format(
                table=sql.SQL(table),
                phone=sql.SQL(", phone" if has_phone else ""),
                phone_match=sql.SQL(" OR phone = ANY(%s)" if has_phone else ""),
            ),
            (org_id, list(subject.emails), list(subject.phones))
            if has_phone
            else (org_id, list(subject.emails)),
        ).fetchall()
        for row in rows:
            if row.get("customer_id"):
                subject.customer_ids.add(row["customer_id"])
            if row.get("email"):
                subject.emails.add(row["email"].lower())
            if row.get("phone"):
                subject.phones |= phone_variants(row["phone"])
    for row in conn.execute(
        "SELECT cart_id FROM app.carts WHERE org_id = %s AND (customer_id = ANY(%s) "
        "OR lower(email) = ANY(%s) OR phone = ANY(%s))",
        (org_id, list(subject.customer_ids), list(subject.emails), list(subject.phones)),
    ).fetchall():
        subject.cart_ids.add(row["cart_id"])
    for row in conn.execute(
        "SELECT message_id FROM app.outbox WHERE org_id = %s AND (cart_id = ANY(%s) "
        "OR lower(recipient) = ANY(%s) OR recipient = ANY(%s))",
        (org_id, list(subject.cart_ids), list(subject.emails), list(subject.phones)),
    ).fetchall():
        subject.message_ids.add(row["message_id"])
    return subject


# --- schema introspection ----------------------------------------------------------------


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


# --- scrubbing values --------------------------------------------------------------------


def scrub_json(value: Any, subject: Subject, *, personal_keys: bool = False) -> tuple[Any, bool]:
    """``value`` with every string (and key) mentioning the subject replaced by REDACTED;
    with ``personal_keys``, also every value under a key in PERSONAL_KEYS. Returns
    ``(new value, changed)``."""
    if isinstance(value, str):
        return (REDACTED, True) if subject.matches_text(value) else (value, False)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        changed = False
        for key, item in value.items():
            new_key = key
            if isinstance(key, str) and subject.matches_text(key):
                new_key = f"{REDACTED}{len(out)}"
                changed = True
            if (
                personal_keys
                and isinstance(key, str)
                and key.lower() in PERSONAL_KEYS
                and item not in (None, "", [], {})
            ):
                out[new_key] = _redact_all(item)
                changed = True
                continue
            new_item, item_changed = scrub_json(item, subject, personal_keys=personal_keys)
            out[new_key] = new_item
            changed = changed or item_changed
        return out, changed
    if isinstance(value, list):
        items = [scrub_json(item, subject, personal_keys=personal_keys) for item in value]
        return [i for i, _ in items], any(c for _, c in items)
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A phone stored as a JSON number.
        if subject.matches_text(str(value)) and len(str(value)) >= 6:
            return REDACTED, True
    return value, False


def _redact_all(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redact_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_all(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    return REDACTED


def _search_condition(table: Table, subject: Subject) -> tuple[sql.Composable, list] | None:
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
    found = _search_condition(table, subject)
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
            or any(_mentions(row[c.name], subject) for c in cols)
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


def _mentions(value: Any, subject: Subject) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return subject.matches_text(value)
    return scrub_json(value, subject)[1]


# --- suppressions ------------------------------------------------------------------------


def _org_salt(conn: psycopg.Connection, org_id: UUID, *, create: bool) -> bytes | None:
    if create:
        conn.execute(
            "INSERT INTO app.privacy_salts (org_id, salt) VALUES (%s, %s) "
            "ON CONFLICT (org_id) DO NOTHING",
            (org_id, secrets.token_bytes(32)),
        )
    row = conn.execute("SELECT salt FROM app.privacy_salts WHERE org_id = %s", (org_id,)).fetchone()
    return bytes(row["salt"]) if row else None


def normalize_address(channel: str, address: str) -> str:
    """How an address is compared: email lower-cased, phone E.164 where recognisable."""
    address = address.strip()
    if channel == "email" or "@" in address:
        return address.lower()
    if channel == "sms":
        return normalize_phone(address) or address
    return address


def _hash(salt: bytes, channel: str, address: str) -> str:
    digest = hmac.new(
        salt, f"{channel}:{normalize_address(channel, address)}".encode(), hashlib.sha256
    ).hexdigest()
    return f"erased:{digest}"


def suppression_key(
    conn: psycopg.Connection, org_id: UUID, channel: str, address: str
) -> str | None:
    """The form an erased subject's address takes in ``app.suppressions``: ``erased:<hex
    HMAC-SHA256(org salt, channel:address)>``; None when the org never erased anyone."""
    salt = _org_salt(conn, org_id, create=False)
    return _hash(salt, channel, address) if salt else None


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


def is_suppressed(conn: psycopg.Connection, org_id: UUID, channel: str, address: str) -> str | None:
    """The suppression reason for ``address`` on ``channel`` (plain or erased form), or None.
    This is the lookup the send-time gate must use."""
    keys = suppression_addresses(conn, org_id, channel, address)
    row = conn.execute(
        "SELECT reason FROM app.suppressions WHERE org_id = %s AND channel = %s "
        "AND address = ANY(%s) LIMIT 1",
        (org_id, channel, keys),
    ).fetchone()
    return row["reason"] if row else None


def _hash_suppressions(conn: psycopg.Connection, org_id: UUID, subject: Subject) -> int:
    rows = conn.execute(
        "SELECT channel, address, reason, created_at FROM app.suppressions WHERE org_id = %s "
        "AND (lower(address) = ANY(%s) OR address = ANY(%s))",
        (org_id, list(subject.emails), list(subject.phones)),
    ).fetchall()
    if not rows:
        return 0
    salt = _org_salt(conn, org_id, create=True)
    for row in rows:
        conn.execute(
            "DELETE FROM app.suppressions WHERE org_id = %s AND channel = %s AND address = %s",
            (org_id, row["channel"], row["address"]),
        )
        conn.execute(
            "INSERT INTO app.suppressions (org_id, channel, address, reason, created_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                org_id,
                row["channel"],
                _hash(salt, row["channel"], row["address"]),
                row["reason"],
                row["created_at"],
            ),
        )
    return len(rows)


def subject_hash(
    conn: psycopg.Connection, org_id: UUID, *, email: str | None, phone: str | None
) -> str:
    """A salted hash naming the subject in records that must hold no PII."""
    salt = _org_salt(conn, org_id, create=True)
    parts = [normalize_email(email) or "", normalize_phone(phone) or ""]
    return hmac.new(salt, "|".join(parts).encode(), hashlib.sha256).hexdigest()


# --- erasure -----------------------------------------------------------------------------


def _enable_erasure(conn: psycopg.Connection) -> None:
    conn.execute("SELECT set_config(%s, 'on', true)", (ERASURE_SETTING,))


def _link_condition(table: Table, subject: Subject) -> tuple[sql.Composable, list] | None:
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
    found = _link_condition(table, subject)
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
    subject = resolve_subject(conn, org_id, email=email, phone=phone)
    _enable_erasure(conn)
    hashed = subject_hash(conn, org_id, email=email, phone=phone)
    counts: dict[str, int] = {}
    counts["app.suppressions"] = _hash_suppressions(conn, org_id, subject)
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
        add("app.suppressions", _hash_suppressions(conn, org_id, people))

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
        found = _link_condition(table, people)
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


# --- export ------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return None  # secrets and hashes are not the subject's data
    if isinstance(value, timedelta):
        return value.total_seconds()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # inet, …


def export_subject(
    conn: psycopg.Connection, org_id: UUID, *, email: str | None = None, phone: str | None = None
) -> dict:
    """Everything held about the subject, JSON-ready: ``{"subject", "customers", "carts"
    (with line items), "orders", "messages", "message_events", "suppressions", "raw_events",
    and one key per other table with linked rows (consents, push subscriptions, coupons…)}``.
    Raises ValueError when neither email nor phone is given."""
    subject = resolve_subject(conn, org_id, email=email, phone=phone)
    names = {
        "app.customers": "customers",
        "app.carts": "carts",
        "app.orders": "orders",
        "app.outbox": "messages",
        "app.message_events": "message_events",
    }
    out: dict[str, Any] = {
        "subject": {"emails": sorted(subject.emails), "phones": sorted(subject.phones)},
        "exported_at": datetime.now(UTC).isoformat(),
    }
    for name in names.values():
        out[name] = []
    secret_columns = {"key_hash", "secret_ciphertext", "credentials_ciphertext", "salt"}
    for table in tables(conn):
        if table.qualified in NOT_LINKED:
            continue
        found = _link_condition(table, subject)
        if found is None:
            continue
        condition, params = found
        rows = conn.execute(
            sql.SQL("SELECT * FROM {} WHERE org_id = %s AND ").format(table.ident) + condition,
            [org_id, *params],
        ).fetchall()
        key = names.get(table.qualified, table.name if table.schema == "app" else table.qualified)
        if rows or key in names.values():
            out[key] = [
                _jsonable({k: v for k, v in r.items() if k not in secret_columns}) for r in rows
            ]
    out["suppressions"] = _jsonable(
        conn.execute(
            "SELECT channel, address, reason, created_at FROM app.suppressions WHERE org_id = %s "
            "AND (lower(address) = ANY(%s) OR address = ANY(%s))",
            (org_id, list(subject.emails), list(subject.phones)),
        ).fetchall()
    )
    out["raw_events"] = _jsonable(_raw_events_about(conn, org_id, subject))
    return out


def _raw_events_about(conn: psycopg.Connection, org_id: UUID, subject: Subject) -> list[dict]:
    raw = next((t for t in tables(conn) if t.qualified == "raw.events"), None)
    if raw is None:
        return []
    found = _search_condition(raw, subject) or (sql.SQL("false"), [])
    condition, params = found
    rows = conn.execute(
        sql.SQL(
            "SELECT event_id, received_at, source, topic, connection_id, cart_id, "
            "occurred_at, payload, headers FROM raw.events WHERE org_id = %s AND "
            "({} OR cart_id = ANY(%s)) ORDER BY received_at"
        ).format(condition),
        [org_id, *params, list(subject.cart_ids)],
    ).fetchall()
    return [
        r
        for r in rows
        if r["cart_id"] in subject.cart_ids
        or _mentions(r["payload"], subject)
        or _mentions(r["headers"], subject)
    ]


# --- retention ---------------------------------------------------------------------------


def purge_raw_events(
    db_or_conn: Any, now: datetime | None = None, *, batch_size: int = 1000
) -> int:
    """Empty payload and headers (``{"purged": true}`` / ``{}``) of raw events older than their
    org's ``raw_retention_days`` (``app.orgs.settings``, default 365). Takes a
    ``Database`` (runs system transactions, batch by batch) or a connection (runs in it).
    Returns how many events were purged. Idempotent: purged rows are not touched again."""
    now = now or datetime.now(UTC)
    statement = """
        WITH due AS (
          SELECT e.org_id, e.event_id, e.received_at
          FROM app.orgs o
          JOIN raw.events e ON e.org_id = o.org_id
            AND e.received_at < %(now)s - make_interval(days => COALESCE(
                  NULLIF(o.settings->>'raw_retention_days', '')::int, %(default)s))
          WHERE e.payload <> '{"purged": true}'::jsonb
          LIMIT %(limit)s
        )
        UPDATE raw.events e SET payload = '{"purged": true}'::jsonb, headers = '{}'::jsonb
        FROM due
        WHERE e.org_id = due.org_id AND e.event_id = due.event_id
          AND e.received_at = due.received_at
    """
    params = {"now": now, "default": DEFAULT_RAW_RETENTION_DAYS, "limit": batch_size}
    if isinstance(db_or_conn, psycopg.Connection):
        total = 0
        while True:
            n = db_or_conn.execute(statement, params).rowcount
            total += n
            if n < batch_size:
                return total
    total = 0
    while True:
        with db_or_conn.system() as conn:
            n = conn.execute(statement, params).rowcount
        total += n
        if n < batch_size:
            return total


_last_purge: float | None = None


def purge_raw_events_if_due(
    db: Any, *, every_seconds: float = 3600.0, now: datetime | None = None
) -> int:
    """:func:`purge_raw_events` at most once per ``every_seconds`` in this process (the
    scheduler tick calls this every few seconds; retention is counted in days)."""
    global _last_purge
    clock = time.monotonic()
    if _last_purge is not None and clock - _last_purge < every_seconds:
        return 0
    _last_purge = clock
    return purge_raw_events(db, now=now)


# --- providers ---------------------------------------------------------------------------


def remove_from_providers(
    settings: Any, *, emails: Iterable[str] = (), phones: Iterable[str] = ()
) -> dict:
    """Remove the subject's contacts from providers that store them (after the database
    erasure committed). SendGrid (when ``SENDGRID_API_KEY`` is set): look the emails up in
    Marketing Contacts and delete the contacts found. Twilio keeps no contact store: 'not
    applicable'. Returns ``{"sendgrid": ..., "twilio": ...}``; a provider failure is reported,
    never raised (the erasure itself already happened)."""
    result: dict[str, Any] = {"twilio": "not_applicable"}
    emails = sorted({e for e in (normalize_email(x) for x in emails) if e})
    if not getattr(settings, "sendgrid_api_key", None):
        result["sendgrid"] = "not_configured"
    elif not emails:
        result["sendgrid"] = "no_email"
    else:
        result["sendgrid"] = _sendgrid_delete_contacts(settings, emails)
    return result


def _sendgrid_delete_contacts(settings: Any, emails: list[str]) -> dict:
    from python_http_client.exceptions import HTTPError
    from sendgrid import SendGridAPIClient

    client = SendGridAPIClient(settings.sendgrid_api_key, host=settings.sendgrid_base_url)
    client.client.timeout = 10.0
    try:
        try:
            found = client.client.marketing.contacts.search.emails.post(
                request_body={"emails": emails}
            )
            body = json.loads(found.body or b"{}")
        except HTTPError as exc:
            # 404: none of the emails is a contact.
            if getattr(exc, "status_code", 0) == 404:
                return {"status": "no_contacts", "deleted": 0}
            raise
        ids = [
            entry["contact"]["id"]
            for entry in (body.get("result") or {}).values()
            if isinstance(entry, dict) and entry.get("contact", {}).get("id")
        ]
        if not ids:
            return {"status": "no_contacts", "deleted": 0}
        response = client.client.marketing.contacts.delete(query_params={"ids": ",".join(ids)})
        job = json.loads(response.body or b"{}").get("job_id")
        return {"status": "deleted", "deleted": len(ids), "job_id": job}
    except HTTPError as exc:
        log.error("sendgrid contact deletion failed: %s", getattr(exc, "status_code", exc))
        return {"status": "error", "code": getattr(exc, "status_code", None)}
    except OSError as exc:
        log.error("sendgrid unreachable for contact deletion: %s", exc)
        return {"status": "error", "code": None}
