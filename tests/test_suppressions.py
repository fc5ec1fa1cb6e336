"""The one suppression rule: an address keeps the suppression that is hardest to lift."""

from __future__ import annotations

import pytest

from cartrecovery import suppressions

PHONE = "+1 503-555-0188"


def reasons(conn, org_id) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT channel, address, reason FROM app.suppressions WHERE org_id = %s ORDER BY 1, 2",
        (org_id,),
    ).fetchall()
    return [(r["channel"], r["address"], r["reason"]) for r in rows]


def test_addresses_are_stored_normalised_once(db, org):
    with db.tenant(org.org_id) as conn:
        suppressions.suppress(conn, org.org_id, "email", " Jane@Example.COM ", "unsubscribe")
        suppressions.suppress(conn, org.org_id, "email", "jane@example.com", "unsubscribe")
        suppressions.suppress(conn, org.org_id, "sms", PHONE, "stop")
        assert reasons(conn, org.org_id) == [
            ("email", "jane@example.com", "unsubscribe"),
            ("sms", "+15035550188", "stop"),
        ]
        assert suppressions.is_suppressed(conn, org.org_id, "sms", "+15035550188") == "stop"


@pytest.mark.parametrize(
    ("channel", "first", "then", "kept"),
    [
        ("sms", "stop", "invalid_number", "invalid_number"),  # final beats liftable
        ("sms", "invalid_number", "stop", "invalid_number"),  # final is never replaced
        ("sms", "stop", "stop", "stop"),
        ("email", "group_unsubscribe", "unsubscribe", "unsubscribe"),
        ("email", "bounce", "group_unsubscribe", "bounce"),
        ("email", "spamreport", "bounce", "spamreport"),  # between final ones the first stays
    ],
)
def test_the_hardest_reason_to_lift_stays(db, org, channel, first, then, kept):
    address = "jane@example.com" if channel == "email" else PHONE
    with db.tenant(org.org_id) as conn:
        suppressions.suppress(conn, org.org_id, channel, address, first)
        suppressions.suppress(conn, org.org_id, channel, address, then)
        assert suppressions.is_suppressed(conn, org.org_id, channel, address) == kept


def test_only_the_matching_liftable_reason_is_lifted(db, org):
    with db.tenant(org.org_id) as conn:
        suppressions.suppress(conn, org.org_id, "sms", PHONE, "stop")
        suppressions.suppress(conn, org.org_id, "sms", PHONE, "invalid_number")
        assert not suppressions.lift(conn, org.org_id, "sms", PHONE, "stop")
        assert suppressions.is_suppressed(conn, org.org_id, "sms", PHONE) == "invalid_number"
        with pytest.raises(ValueError):
            suppressions.lift(conn, org.org_id, "sms", PHONE, "invalid_number")
        suppressions.suppress(conn, org.org_id, "email", "a@example.com", "group_unsubscribe")
        assert not suppressions.lift(conn, org.org_id, "email", "a@example.com", "stop")
        assert suppressions.lift(conn, org.org_id, "email", "A@example.com", "group_unsubscribe")
        assert suppressions.is_suppressed(conn, org.org_id, "email", "a@example.com") is None


def test_a_suppression_held_everywhere_applies_to_every_org(db, org, make_org):
    other = make_org("other")
    phone = "+15035550177"
    with db.system() as conn:
        suppressions.suppress_everywhere(conn, "sms", phone, "stop")
    for someone in (org, other):
        with db.tenant(someone.org_id) as conn:
            assert suppressions.is_suppressed(conn, someone.org_id, "sms", phone) == "stop"
            assert reasons(conn, someone.org_id) == []  # no org holds the number itself
    with db.system() as conn:
        assert suppressions.lift_everywhere(conn, "sms", phone, "stop")
    with db.tenant(org.org_id) as conn:
        assert suppressions.is_suppressed(conn, org.org_id, "sms", phone) is None
