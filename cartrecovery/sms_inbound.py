"""Inbound SMS: replies and the TCPA/CTIA keywords (STOP, START, HELP), routed to orgs.

An inbound SMS is routed to orgs by the number it was sent to: an org whose sender identity
(settings ``sender_identities.sms``) names that number or messaging service owns it; a shared
sender (the global ``TWILIO_PHONE_NUMBER``/``TWILIO_MESSAGING_SERVICE_SID``, or an unknown
one) belongs to every org that has texted, suppressed, recorded consent for, or stored that
phone. Opt-outs apply to all of those orgs (an opt-out must never be lost), opt-ins to the
orgs that hold a STOP for the phone, HELP and ordinary replies to the org that texted the
phone last. The message is stored once per org it concerns (``raw.events``).

An opt-out takes effect at once: SMS to the phone is suppressed for the org (reason
``'stop'``) and the withdrawal is appended to the consent ledger. START lifts only a
``'stop'`` suppression (a number found invalid stays suppressed) and records a grant.

A STOP to the shared sender (or to a number no org owns) is also held for every org, present
and future (``suppressions.suppress_everywhere``, a salted hash of the number): it holds even
when no org knows the number yet, so the confirmation texted back is true; a START to the
shared sender lifts it. Such a message is
keyed once by its provider id (``app.global_event_keys``), so a redelivered STOP cannot undo
a later START.

Keywords arrive classified (the values of ``sms_keywords.Keyword``): ``"opt_out"``,
``"opt_in"``, ``"help"``, or None for an ordinary reply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg

from . import consents, phones, suppressions
from .db import Database
from .events import store_event
from .org_settings import get_settings

log = logging.getLogger(__name__)

SOURCE = "twilio"
OPT_OUT, OPT_IN, HELP = "opt_out", "opt_in", "help"
SUPPRESSION_REASON = "stop"
CONSENT_SOURCE = "sms_keyword"


def e164_or_given(value: str | None) -> str:
    """E.164 for a phone number; other senders (short codes, alphanumeric) as given."""
    text = (value or "").strip()
    return phones.e164_or_none(text) or text


# --- keywords ----------------------------------------------------------------------------


def _record_consent(conn, org_id, phone: str, status: str, body: str | None) -> None:
    try:
        consents.record_consent(
            conn,
            org_id,
            channel="sms",
            address=phone,
            status=status,
            source=CONSENT_SOURCE,
            wording=(body or "").strip()[:160],
        )
    except consents.InvalidAddress:
        # Short codes and alphanumeric senders are not E.164; the suppression still holds.
        log.warning("sms keyword from %r not recorded in the consent ledger", phone)


def opt_out(conn: psycopg.Connection, org_id, phone: str, body: str | None = None) -> None:
    """Suppress SMS to ``phone`` for ``org_id`` (reason 'stop') and record the withdrawal."""
    suppressions.suppress(conn, org_id, "sms", phone, SUPPRESSION_REASON)
    _record_consent(conn, org_id, phone, "withdrawn", body)


def opt_in(conn: psycopg.Connection, org_id, phone: str, body: str | None = None) -> bool:
    """Lift a 'stop' suppression of ``phone`` and record the renewed consent. Returns True
    when a suppression was lifted."""
    lifted = suppressions.lift(conn, org_id, "sms", phone, SUPPRESSION_REASON)
    _record_consent(conn, org_id, phone, "granted", body)
    return lifted


def apply(conn: psycopg.Connection, org_id, keyword: str, phone: str, body: str | None = None):
    """Apply ``keyword`` from ``phone`` to ``org_id`` (HELP changes nothing)."""
    if keyword == OPT_OUT:
        opt_out(conn, org_id, phone, body)
    elif keyword == OPT_IN:
        opt_in(conn, org_id, phone, body)


# --- routing -----------------------------------------------------------------------------


def owners_of(conn: psycopg.Connection, to: str, messaging_service: str | None) -> list[UUID]:
    """The orgs whose own sender identity is ``to`` or ``messaging_service``. Run as system."""
    rows = conn.execute(
        """
        SELECT org_id FROM app.orgs
        WHERE settings -> 'sender_identities' -> 'sms' ->> 'from_number' = %s
           OR (%s::text IS NOT NULL AND
               settings -> 'sender_identities' -> 'sms' ->> 'messaging_service_sid' = %s)
        """,
        (to, messaging_service, messaging_service),
    ).fetchall()
    return [r["org_id"] for r in rows]


def orgs_for(
    conn: psycopg.Connection, phone: str, owner_ids: list[UUID], *, owned: bool
) -> list[dict]:
    """Orgs an inbound SMS from ``phone`` concerns, each ``{org_id, name, has_stop}``, the org
    that texted the phone most recently first: with ``owned`` (sent to an org's own sender)
    only ``owner_ids``, else every org that knows the phone, and the owners. Run as system."""
    return conn.execute(
        """
        WITH contacts AS (
          SELECT org_id, coalesce(sent_at, created_at) AS contacted_at
            FROM app.outbox WHERE channel = 'sms' AND recipient = %(phone)s
          UNION ALL
          SELECT org_id, NULL FROM app.suppressions
            WHERE channel = 'sms' AND address = %(phone)s
          UNION ALL
          SELECT org_id, NULL FROM app.consents
            WHERE channel = 'sms' AND address = %(phone)s
          UNION ALL
          SELECT org_id, NULL FROM app.customers WHERE phone = %(phone)s
          UNION ALL
          SELECT org_id, NULL FROM unnest(%(owners)s::uuid[]) AS o(org_id)
        )
        SELECT o.org_id, o.name, max(c.contacted_at) AS contacted_at,
               EXISTS (SELECT 1 FROM app.suppressions s
                       WHERE s.org_id = o.org_id AND s.channel = 'sms'
                         AND s.address = %(phone)s AND s.reason = 'stop') AS has_stop
        FROM contacts c JOIN app.orgs o USING (org_id)
        WHERE %(restrict)s = false OR o.org_id = ANY(%(owners)s::uuid[])
        GROUP BY o.org_id, o.name
        ORDER BY max(c.contacted_at) DESC NULLS LAST, o.created_at
        """,
        {"phone": phone, "owners": owner_ids, "restrict": owned},
    ).fetchall()


def targets(keyword: str | None, orgs: list[dict]) -> list[dict]:
    """The orgs a message applies to: all for an opt-out, those holding a STOP for an opt-in
    (else the latest), the latest for HELP and replies."""
    if keyword == OPT_OUT:
        return orgs
    if keyword == OPT_IN:
        stopped = [o for o in orgs if o["has_stop"]]
        return stopped or orgs[:1]
    return orgs[:1]


# --- one inbound message -----------------------------------------------------------------


@dataclass
class Inbound:
    """What happened to an inbound SMS: the names of the orgs it applied to, the org's HELP
    text (when it set one), and whether it was held for every org."""

    org_names: list[str] = field(default_factory=list)
    help_text: str | None = None
    everywhere: bool = False


def is_shared_sender(settings: Any, to: str, messaging_service: str | None) -> bool:
    """Whether ``to`` (E.164) / ``messaging_service`` is the platform's own shared sender."""
    return bool(
        (to and to == e164_or_given(settings.twilio_phone_number or ""))
        or (messaging_service and messaging_service == settings.twilio_messaging_service_sid)
    )


def receive(
    db: Database,
    settings: Any,
    *,
    sid: str,
    phone: str,
    to: str,
    messaging_service: str | None,
    keyword: str | None,
    body: str,
    payload: dict,
    headers: dict,
) -> Inbound:
    """Store the inbound SMS ``sid`` once per org it concerns and apply ``keyword`` there;
    an opt-out or opt-in to the shared sender that concerns no org is held for every org.
    ``phone`` and ``to`` are E.164 where they are phone numbers (:func:`e164_or_given`)."""
    shared = is_shared_sender(settings, to, messaging_service)
    with db.system() as conn:
        owner_ids = owners_of(conn, to, messaging_service)
        owned = bool(owner_ids) and not shared
        orgs = orgs_for(conn, phone, owner_ids, owned=owned)
    chosen = targets(keyword, orgs)
    topic = f"inbound.{keyword}" if keyword else "inbound"
    result = Inbound()
    for org in chosen:
        with db.tenant(org["org_id"]) as conn:
            stored = store_event(
                conn,
                org_id=org["org_id"],
                source=SOURCE,
                topic=topic,
                dedup_key=sid,
                payload=payload,
                headers=headers,
            )
            # A redelivered STOP must not undo a later START (and vice versa).
            if stored is not None and keyword is not None:
                apply(conn, org["org_id"], keyword, phone, body)
            if keyword == HELP and result.help_text is None:
                template = get_settings(conn, org["org_id"]).get("sms_help_text")
                # The setting may name the store as {store}.
                result.help_text = (
                    str(template).replace("{store}", org["name"]) if template else None
                )
        result.org_names.append(org["name"])
    # Not sent to an org's own number: the person told our shared sender to stop, and every
    # org that meets the number later texts from it too, so the opt-out is held for every org
    # (the orgs that know the number also hold it themselves); an opt-in there lifts it.
    if not owned and keyword in (OPT_OUT, OPT_IN):
        result.everywhere = _apply_everywhere(db, sid, keyword, phone)
    if chosen:
        log.info("inbound sms %s (%s) for %d org(s)", sid, keyword or "reply", len(chosen))
    elif result.everywhere:
        log.info("inbound sms %s (%s) matches no org; held for every org", sid, keyword)
    else:
        log.warning("inbound sms %s (%s) matches no org; not stored", sid, keyword or "reply")
    return result


def _apply_everywhere(db: Database, sid: str, keyword: str, phone: str) -> bool:
    """Apply an opt-out/opt-in that no single org holds, once per message ``sid``. True when
    an opt-out is held for every org (now or by an earlier delivery of this message)."""
    with db.system() as conn:
        claimed = conn.execute(
            "INSERT INTO app.global_event_keys (source, dedup_key) VALUES (%s, %s) "
            "ON CONFLICT DO NOTHING RETURNING dedup_key",
            (SOURCE, sid),
        ).fetchone()
        if keyword == OPT_OUT:
            if claimed:
                suppressions.suppress_everywhere(conn, "sms", phone, SUPPRESSION_REASON)
            return True
        if claimed:
            suppressions.lift_everywhere(conn, "sms", phone, SUPPRESSION_REASON)
        return False
