"""One phone rule at every door: a number the tracking API stores can be consented and
messaged; a number that cannot be messaged is refused at the door with the reason (or, from a
platform's payload, left out of the record) and held by the gate.

+447700900123 is in Ofcom's drama range: possible (right length) but never assigned.
+447911123456 is an ordinary UK mobile number."""

from __future__ import annotations

import pytest
from test_gate import ALWAYS, SMS_STEP, configure, decided, make_cart, make_message, rt  # noqa: F401

from cartrecovery import phones
from cartrecovery.canonical import CanonicalCart, CanonicalOrder

DRAMA = "+447700900123"
MOBILE = "+44 7911 123456"


def track(client, org, phone: str):
    return client.post(
        "/api/v1/carts/track",
        json={
            "event": "checkout_started",
            "timestamp": "2026-05-01T12:00:00Z",
            "cart_data": {"cart_id": f"c-{phone}", "email": "kim@example.com", "phone": phone},
        },
        headers=org.headers,
    )


def consent(client, org, phone: str):
    return client.post(
        "/api/v1/consents",
        json={"channel": "sms", "address": phone, "status": "granted", "source": "checkout"},
        headers=org.headers,
    )


def stored_phone(db, org_id, external_id):
    with db.system() as conn:
        return conn.execute(
            "SELECT phone FROM app.carts WHERE org_id = %s AND external_id = %s",
            (org_id, external_id),
        ).fetchone()["phone"]


def test_the_rule():
    assert phones.to_e164(MOBILE) == "+447911123456"
    with pytest.raises(phones.InvalidPhone, match="no range allocated.* in GB"):
        phones.to_e164(DRAMA)
    with pytest.raises(phones.InvalidPhone, match="international format"):
        phones.to_e164("07911 123456")
    with pytest.raises(phones.InvalidPhone, match="wrong length"):
        phones.to_e164("+44 12")
    assert phones.e164_or_none(DRAMA) is None


def test_a_valid_number_passes_every_door(client, db, org, rt):  # noqa: F811
    configure(db, org.org_id, quiet_hours=ALWAYS)
    assert track(client, org, MOBILE).status_code == 202
    phone = stored_phone(db, org.org_id, f"c-{MOBILE}")
    assert phone == "+447911123456"
    assert consent(client, org, phone).status_code == 201
    cart = make_cart(db, org.org_id, phone=phone)
    assert decided(make_message(db, cart, [SMS_STEP])) == ("sent", None)


def test_a_drama_number_is_refused_at_every_door_with_the_reason(client, db, org, rt):  # noqa: F811
    configure(db, org.org_id, quiet_hours=ALWAYS)
    tracked = track(client, org, DRAMA)
    assert tracked.status_code == 400
    assert "not a valid phone number" in str(tracked.get_json()["error"])
    with db.system() as conn:
        assert (
            conn.execute(
                "SELECT count(*) AS n FROM app.carts WHERE org_id = %s", (org.org_id,)
            ).fetchone()["n"]
            == 0
        )
    consented = consent(client, org, DRAMA)
    assert consented.status_code == 400
    assert "not a valid phone number" in consented.get_json()["error"]["message"]
    # A row written before the rule (or by hand) is held by the gate for the same reason.
    cart = make_cart(db, org.org_id, phone=DRAMA)
    assert decided(make_message(db, cart, [SMS_STEP])) == ("held", "invalid_phone")


def test_platform_records_keep_only_numbers_we_can_message():
    # A platform's webhook is not refused for its phone (that would lose the cart): the
    # number is left out of the record, the raw event keeps it.
    assert CanonicalCart(platform="shopify", external_id="t", phone=DRAMA).phone is None
    assert CanonicalCart(platform="shopify", external_id="t", phone=MOBILE).phone == (
        "+447911123456"
    )
    assert CanonicalOrder(platform="woocommerce", external_id="o", phone=DRAMA).phone is None
