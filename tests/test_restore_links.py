"""Signed restore links: tokens, the /r/<token> redirect, the click it records, attribution."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from psycopg.types.json import Jsonb

from cartrecovery import tenancy
from cartrecovery.canonical import CanonicalOrder
from cartrecovery.orders import record_order
from cartrecovery.signed_links import (
    ExpiredToken,
    InvalidToken,
    make_token,
    read_token,
    restore_url,
)

KEY = "test-secret-key"  # conftest's Settings.secret_key
PLATFORM_URL = "https://shop.example.com/checkouts/abc/recover?key=k1&utm_source=old"


# --- tokens ---------------------------------------------------------------------------------


def test_token_round_trip():
    org, message, cart = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    issued = datetime(2026, 1, 1, tzinfo=UTC)
    token = make_token(KEY, org, message, cart, timedelta(days=30), now=issued)
    read = read_token(KEY, token, now=issued + timedelta(days=29))
    assert (read.org_id, read.message_id, read.cart_id) == (org, message, cart)
    assert read.issued_at == issued and read.expires_at == issued + timedelta(days=30)
    assert len(token) < 120  # short enough for an SMS
    assert restore_url("https://app.test/", KEY, org, message, cart).startswith(
        "https://app.test/r/"
    )


def test_token_expires():
    issued = datetime(2026, 1, 1, tzinfo=UTC)
    token = make_token(KEY, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), 3600, now=issued)
    read_token(KEY, token, now=issued + timedelta(minutes=59))
    with pytest.raises(ExpiredToken):
        read_token(KEY, token, now=issued + timedelta(minutes=61))
    with pytest.raises(ExpiredToken):
        read_token(KEY, make_token(KEY, uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), -1))


def test_tampered_tokens_are_refused():
    token = make_token(KEY, uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    payload, stamp, signature = token.split(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    for bad in (
        f"{flipped}.{stamp}.{signature}",
        token[:-3],
        "",
        "abc",
        f"{payload}..",
        f"{payload}.{stamp}.{'x' * 27}",
    ):
        with pytest.raises(InvalidToken):
            read_token(KEY, bad)
    with pytest.raises(InvalidToken):
        read_token("another-key", token)


# --- the endpoint ---------------------------------------------------------------------------


def _message(db, org_id, *, restore=PLATFORM_URL, channel="email", connection_id=None):
    """A cart with a campaign message for it, as the scheduler makes them."""
    external = uuid.uuid4().hex
    with db.system() as conn:
        cart_id = conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, email, currency, total_price,"
            " line_items, restore_url, status, abandoned_at, connection_id) VALUES "
            "(%s, 'custom', %s, 'ann@example.com', 'USD', 80, %s, %s, 'abandoned', "
            "now() - interval '2 hours', %s) RETURNING cart_id",
            (org_id, external, Jsonb([]), restore, connection_id),
        ).fetchone()["cart_id"]
        campaign_id = conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status) VALUES (%s, 'c', 'active') "
            "RETURNING campaign_id",
            (org_id,),
        ).fetchone()["campaign_id"]
        message_id = conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
            "recipient, due_at, status, sent_at) VALUES (%s, %s, %s, 0, %s, "
            "'ann@example.com', now() - interval '1 hour', 'sent', now() - interval '1 hour') "
            "RETURNING message_id",
            (org_id, cart_id, campaign_id, channel),
        ).fetchone()["message_id"]
    return {
        "cart_id": cart_id,
        "campaign_id": campaign_id,
        "message_id": message_id,
        "external_id": external,
    }


def _clicks(db, org_id):
    with db.system() as conn:
        return conn.execute(
            "SELECT * FROM app.message_events WHERE org_id = %s AND event_type = 'click'", (org_id,)
        ).fetchall()


def test_click_redirects_with_utm_and_counts_once_per_window(client, db, org):
    m = _message(db, org.org_id, channel="sms")
    token = make_token(KEY, org.org_id, m["message_id"], m["cart_id"])

    response = client.get(f"/r/{token}")
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert (target.scheme, target.netloc, target.path) == (
        "https",
        "shop.example.com",
        "/checkouts/abc/recover",
    )
    assert parse_qs(target.query) == {
        "key": ["k1"],
        "utm_source": ["cartrecovery"],
        "utm_medium": ["sms"],
        "utm_campaign": [str(m["campaign_id"])],
    }
    assert response.headers["Cache-Control"] == "no-store"

    clicks = _clicks(db, org.org_id)
    assert len(clicks) == 1
    click = clicks[0]
    assert (click["message_id"], click["cart_id"]) == (m["message_id"], m["cart_id"])
    assert click["url"] == response.headers["Location"]
    assert click["event_key"].startswith(f"restore:{m['message_id']}:")

    assert client.get(f"/r/{token}").status_code == 302  # a scanner or a double tap
    assert len(_clicks(db, org.org_id)) == 1

    with db.system() as conn:  # the shopper comes back later: that click counts again
        conn.execute(
            "UPDATE app.message_events SET occurred_at = occurred_at - "
            "interval '2 minutes' WHERE org_id = %s",
            (org.org_id,),
        )
    assert client.get(f"/r/{token}").status_code == 302
    assert len(_clicks(db, org.org_id)) == 2


def test_click_then_order_is_a_recovery_of_that_message(client, db, org):
    m = _message(db, org.org_id)
    token = make_token(KEY, org.org_id, m["message_id"], m["cart_id"])
    assert client.get(f"/r/{token}").status_code == 302

    order = CanonicalOrder(
        platform="custom",
        external_id=f"o-{uuid.uuid4().hex[:8]}",
        checkout_token=m["external_id"],
        total_price=Decimal("80.00"),
        currency="USD",
        ordered_at=datetime.now(UTC) + timedelta(seconds=5),
    )
    with db.tenant(org.org_id) as conn:
        result = record_order(conn, org.org_id, order)
    assert result["recovered"] is True and result["revenue"] == Decimal("80.00")
    with db.system() as conn:
        recovery = conn.execute(
            "SELECT * FROM app.recoveries WHERE org_id = %s", (org.org_id,)
        ).fetchone()
        status = conn.execute(
            "SELECT status FROM app.carts WHERE cart_id = %s", (m["cart_id"],)
        ).fetchone()["status"]
    assert (recovery["message_id"], recovery["campaign_id"], recovery["channel"]) == (
        m["message_id"],
        m["campaign_id"],
        "email",
    )
    assert status == "recovered"


def test_cart_without_restore_url_goes_to_the_store(client, db, org, runtime):
    domain = f"s-{uuid.uuid4().hex[:8]}.myshopify.com"
    connection_id = tenancy.add_connection(
        db, runtime.encryption_key, org.org_id, "shopify", domain, "whsec"
    )
    m = _message(db, org.org_id, restore=None, connection_id=connection_id)
    response = client.get(f"/r/{make_token(KEY, org.org_id, m['message_id'], m['cart_id'])}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"https://{domain}?utm_source=cartrecovery")
    assert len(_clicks(db, org.org_id)) == 1


def test_unsafe_restore_url_is_never_a_redirect_target(client, db, org):
    m = _message(db, org.org_id, restore="javascript:alert(1)")
    response = client.get(f"/r/{make_token(KEY, org.org_id, m['message_id'], m['cart_id'])}")
    assert response.status_code == 410
    assert _clicks(db, org.org_id) == []


def test_expired_link_is_410_and_records_nothing(client, db, org):
    m = _message(db, org.org_id)
    token = make_token(KEY, org.org_id, m["message_id"], m["cart_id"], -60)
    response = client.get(f"/r/{token}")
    assert response.status_code == 410
    assert response.get_json()["error"]["code"] == "link_expired"
    page = client.get(f"/r/{token}", headers={"Accept": "text/html,*/*;q=0.8"})
    assert page.status_code == 410 and page.mimetype == "text/html"
    assert "expired" in page.get_data(as_text=True)
    assert _clicks(db, org.org_id) == []


def test_tampered_link_is_400_and_records_nothing(client, db, org):
    m = _message(db, org.org_id)
    token = make_token(KEY, org.org_id, m["message_id"], m["cart_id"])
    for bad in (
        token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
        make_token("not-our-key", org.org_id, m["message_id"], m["cart_id"]),
        "nonsense",
        "a" * 2000,
        "x.y.z",
        "%00%ff",
    ):
        response = client.get(f"/r/{bad}")
        assert response.status_code == 400, bad
        assert response.get_json()["error"]["code"] == "invalid_link"
    assert _clicks(db, org.org_id) == []


def test_link_naming_another_orgs_cart_finds_nothing(client, db, org, make_org):
    other = make_org("other")
    m = _message(db, other.org_id)
    # Genuinely signed, but naming org A with org B's message and cart: RLS hides them.
    token = make_token(KEY, org.org_id, m["message_id"], m["cart_id"])
    assert client.get(f"/r/{token}").status_code == 410
    assert _clicks(db, org.org_id) == [] and _clicks(db, other.org_id) == []
