"""The simulated store: payload shape, signatures, determinism, the abandonment mix, and
posting to the real ingest app over HTTP."""

from __future__ import annotations

import json
import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from conftest import fixture_bytes, fixture_headers, fixture_vectors, shopify_hmac, wait_for
from psycopg.types.json import Jsonb
from sendgrid.helpers.eventwebhook import EventWebhook
from werkzeug.serving import make_server

from cartrecovery import tenancy
from cartrecovery.applier import apply_pending
from cartrecovery.settings import with_overrides
from simulator.store import (
    EMAIL_DOMAINS,
    Behavior,
    StoreSimulator,
    order_payload,
    sendgrid_body,
    sendgrid_event_batch,
    sendgrid_keypair,
    sign_sendgrid,
    sign_shopify,
)

FIXED_NOW = 1_773_500_000.0


def _sim(seed=1, **kwargs) -> StoreSimulator:
    kwargs.setdefault("clock", lambda: FIXED_NOW)
    return StoreSimulator("http://127.0.0.1:9", "sim.myshopify.com", "s3cret", seed=seed, **kwargs)


def _keys(obj) -> set:
    return set(obj)


def test_checkout_has_the_shopify_shape():
    fixture = json.loads(fixture_bytes("shopify_checkouts_create.json"))
    checkout = _sim().new_checkout()
    assert _keys(fixture) <= _keys(checkout)
    for item in checkout["line_items"]:
        assert _keys(fixture["line_items"][0]) <= _keys(item)
    assert _keys(fixture["customer"]) <= _keys(checkout["customer"])
    assert _keys(fixture["customer"]["default_address"]) <= _keys(
        checkout["customer"]["default_address"]
    )
    assert _keys(fixture["billing_address"]) <= _keys(checkout["billing_address"])
    # money is decimal strings that add up
    subtotal = sum(float(i["line_price"]) for i in checkout["line_items"])
    assert checkout["subtotal_price"] == f"{subtotal:.2f}"
    total = float(checkout["subtotal_price"]) + float(checkout["total_tax"])
    assert checkout["total_price"] == f"{total:.2f}"
    assert 1 <= len(checkout["line_items"]) <= 4
    datetime.fromisoformat(checkout["created_at"])


def test_order_has_the_shopify_shape_and_points_at_its_checkout():
    fixture = json.loads(fixture_bytes("shopify_orders_create.json"))
    checkout = _sim().new_checkout()
    order = order_payload(
        checkout,
        order_id=5901,
        order_number=1001,
        token="t" * 32,
        created_at=datetime.fromtimestamp(FIXED_NOW, UTC),
    )
    assert _keys(fixture) <= _keys(order)
    assert _keys(fixture["line_items"][0]) <= _keys(order["line_items"][0])
    assert order["checkout_token"] == checkout["token"]
    assert order["checkout_id"] == checkout["id"]
    assert order["cart_token"] == checkout["cart_token"]
    assert order["total_price"] == checkout["total_price"]
    assert order["email"] == checkout["email"]


def test_shopify_signature_matches_the_recorded_vector():
    vectors = fixture_vectors()["shopify"]
    body = fixture_bytes("shopify_checkouts_create.json")
    expected = fixture_headers("shopify", "shopify_checkouts_create.json")["X-Shopify-Hmac-Sha256"]
    assert sign_shopify(vectors["client_secret"], body) == expected
    assert sign_shopify("another secret", body) != expected


def test_sendgrid_signature_verifies_with_the_sdk():
    private_key, public_key = sendgrid_keypair()
    message = {"message_id": uuid.uuid4(), "org_id": uuid.uuid4(), "recipient": "a@example.com"}
    events = sendgrid_event_batch(
        message,
        ["delivered", "open", "click"],
        timestamp=int(FIXED_NOW),
        rng=random.Random(3),
        url="https://shop.example/r/1",
    )
    assert [e["event"] for e in events] == ["delivered", "open", "click"]
    assert all(e["message_id"] == str(message["message_id"]) for e in events)
    assert events[2]["url"] == "https://shop.example/r/1"
    body = sendgrid_body(events)
    signature = sign_sendgrid(private_key, "1773500000", body)
    verifier = EventWebhook(public_key)
    assert verifier.verify_signature(body.decode(), signature, "1773500000")
    assert not verifier.verify_signature(body.decode(), signature, "1773500001")
    assert not verifier.verify_signature(body.decode()[:-1] + " ]", signature, "1773500000")


def test_same_seed_same_traffic_other_seed_other_traffic():
    a, b, c = _sim(seed=42), _sim(seed=42), _sim(seed=43)
    first = [a.new_checkout() for _ in range(20)]
    assert first == [b.new_checkout() for _ in range(20)]
    assert [s.buys for s in a.sessions.values()] == [s.buys for s in b.sessions.values()]
    assert first != [c.new_checkout() for _ in range(20)]


def test_about_seventy_percent_of_sessions_abandon():
    sim = _sim(seed=2024)
    for _ in range(1000):
        sim.new_checkout()
    sessions = list(sim.sessions.values())
    assert len(sessions) == 1000
    abandoned = sum(not s.buys for s in sessions) / len(sessions)
    assert 0.65 <= abandoned <= 0.75
    # buyers order within the abandonment timeout: their order action is due before it
    orders = [a for a in sim._queue if a.kind == "order" and sim.sessions[a.key].buys]
    assert len(orders) == sum(s.buys for s in sessions)
    assert all(a.due - FIXED_NOW < sim.behavior.abandonment_timeout for a in orders)


def test_customers_look_real():
    sim = _sim(seed=5)
    for _ in range(200):
        sim.new_checkout()
    assert len(sim.customers) > 100
    for customer in sim.customers:
        ZoneInfo(customer.timezone)  # a real IANA zone
        assert customer.email.rsplit("@", 1)[1] in EMAIL_DOMAINS
        number = phonenumbers.parse(customer.phone)
        assert (
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            == customer.phone
        )
    assert len({c.timezone for c in sim.customers}) >= 5
    # returning customers: some emails appear in more than one session
    emails = [s.checkout["email"] for s in sim.sessions.values()]
    assert len(set(emails)) < len(emails)


@pytest.fixture()
def served():
    """Serve a Flask app on a real local port (the simulator speaks HTTP via requests)."""
    servers = []

    def serve(app):
        rt = app.extensions.get("cartrecovery")

        def applying(environ, start_response):
            # As ApplyingClient (conftest): the applier runs before the answer goes out,
            # where `serve` has its applier thread do it within its lag.
            body = b"".join(app(environ, start_response))
            if rt is not None:
                apply_pending(rt.db)
            return [body]

        server = make_server("127.0.0.1", 0, applying, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()


def _connect_store(db, runtime, org, shop_domain: str, secret: str):
    return tenancy.add_connection(
        db, runtime.encryption_key, org.org_id, "shopify", shop_domain, secret
    )


def test_posted_traffic_lands_as_carts_and_orders(app, runtime, db, org, served):
    shop = f"sim-{uuid.uuid4().hex[:8]}.myshopify.com"
    _connect_store(db, runtime, org, shop, "shpss_sim_secret")
    sim = StoreSimulator(
        served(app), shop, "shpss_sim_secret", seed=11, behavior=Behavior(buy_rate=0.5)
    )
    checkouts = [sim.new_checkout() for _ in range(12)]
    statuses = [sim.post_checkout(c) for c in checkouts]
    assert all(200 <= s < 300 for s in statuses), list(sim.errors)
    sim.flush()  # the planned updates and orders, now
    assert not sim.errors, list(sim.errors)

    # buyers, and abandoners who came back on their own (flush ran their later order too)
    buyers = {t for t, s in sim.sessions.items() if s.buys or s.returns_later}
    assert 0 < len(buyers) < 12
    with db.tenant(org.org_id) as conn:
        carts = conn.execute(
            "SELECT external_id, status, email, total_price FROM app.carts WHERE org_id = %s",
            (org.org_id,),
        ).fetchall()
        orders = conn.execute(
            "SELECT checkout_token FROM app.orders WHERE org_id = %s", (org.org_id,)
        ).fetchall()
    by_token = {c["external_id"]: c for c in carts}
    assert set(by_token) == {c["token"] for c in checkouts}
    assert {o["checkout_token"] for o in orders} == buyers
    for token, cart in by_token.items():
        assert (cart["status"] == "converted") == (token in buyers)
        session = sim.sessions[token]
        assert cart["email"] == session.checkout["email"]
        assert f"{cart['total_price']:.2f}" == session.checkout["total_price"]
    # the signature really is checked: a wrong secret stores nothing
    stranger = StoreSimulator(served(app), shop, "not-the-secret", seed=12)
    assert stranger.post_checkout(stranger.new_checkout()) == 401


def test_engagement_sends_signed_events_and_clicked_carts_order(settings, db, org, served):
    from ingest.app import create_app

    private_key, public_key = sendgrid_keypair()
    app = create_app(with_overrides(settings, sendgrid_webhook_public_key=public_key))
    runtime = app.extensions["cartrecovery"]
    shop = f"sim-{uuid.uuid4().hex[:8]}.myshopify.com"
    _connect_store(db, runtime, org, shop, "shpss_sim_secret")
    always = Behavior(
        buy_rate=0.0,
        organic_return_rate=0.0,
        deliver_rate=1.0,
        open_rate=1.0,
        click_rate=1.0,
        clicked_buy_rate=1.0,
    )
    sim = StoreSimulator(
        served(app),
        shop,
        "shpss_sim_secret",
        seed=21,
        behavior=always,
        sendgrid_private_key=private_key,
        database_url=db.url,
    )
    checkout = sim.new_checkout()
    assert sim.post_checkout(checkout) == 200, sim.errors

    # What delivery does for a sent message: an outbox row and, with the built-in
    # provider, the rendered message in app.local_mailbox.
    message_id = uuid.uuid4()
    with db.tenant(org.org_id) as conn:
        cart_id = conn.execute(
            "SELECT cart_id FROM app.carts WHERE org_id = %s AND external_id = %s",
            (org.org_id, checkout["token"]),
        ).fetchone()["cart_id"]
        campaign_id = conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status, sequence_steps) "
            "VALUES (%s, 'sim', 'active', %s) RETURNING campaign_id",
            (org.org_id, Jsonb([{"channel": "email", "delay_seconds": 0}])),
        ).fetchone()["campaign_id"]
        conn.execute(
            "UPDATE app.carts SET status = 'abandoned', abandoned_at = now() "
            "WHERE org_id = %s AND cart_id = %s",
            (org.org_id, cart_id),
        )
        conn.execute(
            "INSERT INTO app.outbox (org_id, message_id, cart_id, campaign_id, step_index, "
            "channel, recipient, due_at, status, provider, sent_at) "
            "VALUES (%s, %s, %s, %s, 0, 'email', %s, now(), 'sent', 'local', now())",
            (org.org_id, message_id, cart_id, campaign_id, checkout["email"]),
        )
        conn.execute(
            "INSERT INTO app.local_mailbox (org_id, message_id, channel, recipient, subject, "
            "body_html) VALUES (%s, %s, 'email', %s, 'You left something', %s)",
            (
                org.org_id,
                message_id,
                checkout["email"],
                '<a href="https://shop.example/r/abc">Back to your cart</a>',
            ),
        )

    later = StoreSimulator(
        served(app),
        shop,
        "shpss_sim_secret",
        seed=22,
        behavior=always,
        database_url=db.url,
        engage_since=datetime.now(UTC) + timedelta(hours=1),
    )
    assert later.engage_with_sent_messages() == 0  # stored before it started: left alone
    assert sim.engage_with_sent_messages() == 1
    assert sim.engage_with_sent_messages() == 0  # each message is engaged with once
    sim.flush()
    assert not sim.errors, list(sim.errors)

    def events():
        with db.tenant(org.org_id) as conn:
            return conn.execute(
                "SELECT event_type, url FROM app.message_events "
                "WHERE org_id = %s AND message_id = %s",
                (org.org_id, message_id),
            ).fetchall()

    stored = wait_for(lambda: len(events()) == 3 and events())
    assert sorted(e["event_type"] for e in stored) == ["click", "delivered", "open"]
    assert {e["url"] for e in stored if e["event_type"] == "click"} == {
        "https://shop.example/r/abc"
    }
    with db.tenant(org.org_id) as conn:
        order = conn.execute(
            "SELECT cart_id FROM app.orders WHERE org_id = %s AND checkout_token = %s",
            (org.org_id, checkout["token"]),
        ).fetchone()
        recovery = conn.execute(
            "SELECT message_id FROM app.recoveries WHERE org_id = %s AND cart_id = %s",
            (org.org_id, cart_id),
        ).fetchone()
    assert order is not None and order["cart_id"] == cart_id
    assert recovery is not None and recovery["message_id"] == message_id


def test_unsigned_or_forged_engagement_is_refused(settings, served):
    from ingest.app import create_app

    _, public_key = sendgrid_keypair()
    forger, _ = sendgrid_keypair()
    app = create_app(with_overrides(settings, sendgrid_webhook_public_key=public_key))
    sim = StoreSimulator(served(app), "x.myshopify.com", "s", seed=1, sendgrid_private_key=forger)
    message = {"message_id": uuid.uuid4(), "org_id": uuid.uuid4(), "recipient": "a@example.com"}
    events = sendgrid_event_batch(message, ["open"], timestamp=int(sim.clock()), rng=sim.rng)
    assert sim.post_sendgrid_events(events) == 401


def test_shopify_hmac_helper_agrees_with_conftest():
    body = b'{"id": 1}'
    assert sign_shopify("k", body) == shopify_hmac("k", body)


def test_a_click_opens_our_restore_link_without_following_the_redirect(recorder):
    recorder.respond("GET", "/r/abc", 302, b"", {"Location": "https://shop.example.com/cart"})
    sim = StoreSimulator(recorder.url, "sim.myshopify.com", "s3cret", seed=1)
    assert sim.follow_link(f"{recorder.url}/r/abc") == 302
    assert sim.follow_link("https://shop.example.com/elsewhere") is None
    assert [r["path"] for r in recorder.requests] == ["/r/abc"]
    assert sim.stats["restore links opened"] == 1
