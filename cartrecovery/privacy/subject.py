"""The data subject of a privacy request: their addresses and ids, and how to recognise
them in any stored value.

:func:`resolve_subject` starts from the given email/phone and widens it by one hop through
``app.customers``, ``app.carts`` and ``app.orders`` (an email's customer also gives their phone
and vice versa), plus the ids of their customers, carts and messages. :meth:`Subject.matches_text`
finds the email (any case) and the phone (any formatting: digits compared) inside text;
:func:`scrub_json` rewrites a JSON document without them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import phonenumbers
import psycopg
from psycopg import sql

from ..canonical import normalize_email, normalize_phone

REDACTED = "[redacted]"

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


def mentions(value: Any, subject: Subject) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return subject.matches_text(value)
    return scrub_json(value, subject)[1]
