"""The compliance gate: every rule, with the decision and reason stored on the outbox row.

Messages go through the real send job (``jobs.send_message``) with the built-in local provider
on every channel, on real Postgres; time-dependent rules are also checked with
``gate.check(..., now=...)`` at chosen instants.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from psycopg.types.json import Jsonb
from twilio.request_validator import RequestValidator

from cartrecovery.consents import record_consent
from cartrecovery.org_settings import update_settings
from cartrecovery.runtime import Runtime
from cartrecovery.settings import with_overrides
from delivery import enrollment, gate, jobs
from ingest.app import create_app

ALWAYS = {"start": "00:00", "end": "24:00"}
EMAIL_STEP = {
    "channel": "email",
    "delay_seconds": 0,
    "subject": "Still there?",
    "template": "cart_reminder",
}
SMS_STEP = {"channel": "sms", "delay_seconds": 0, "template": "sms_reminder"}
PUSH_STEP = {
    "channel": "push",
    "delay_seconds": 0,
    "subject": "Your cart",
    "template": "push_reminder",
}


@pytest.fixture()
def rt(settings):
    """The local provider for every channel (no provider keys)."""
    runtime = Runtime(
        with_overrides(
            settings,
            sendgrid_api_key=None,
            twilio_account_sid=None,
            twilio_auth_token=None,
            vapid_private_key=None,
        )
    )
    jobs.configure(runtime)
    yield runtime
    jobs.configure(None)


@pytest.fixture(autouse=True)
def _no_due_leftovers(db):
    """Rows left 'scheduled' here would be picked up by another test's scheduler tick
    (ticks are cross-org): park them when the test ends."""
    with db.system() as conn:
        started = conn.execute("SELECT clock_timestamp() AS t").fetchone()["t"]
    yield
    with db.system() as conn:
        conn.execute(
            "UPDATE app.outbox SET status = 'cancelled', reason = 'test ended' "
            "WHERE status IN ('scheduled', 'enqueued') AND created_at >= %s",
            (started,),
        )


def configure(db, org_id, **changes):
    with db.tenant(org_id) as conn:
        update_settings(conn, org_id, changes)


@pytest.fixture()
def shop(db, org, rt):
    """An org whose quiet hours are open all day (tests that need them set them)."""
    configure(db, org.org_id, quiet_hours=ALWAYS)
    return org


def make_cart(
    db, org_id, *, email=None, phone=None, abandoned_ago=3600, customer=None, status="abandoned"
):
    with db.system() as conn:
        customer_id = None
        if customer is not None:
            customer_id = conn.execute(
                "INSERT INTO app.customers (org_id, email, phone, timezone, accepts_marketing) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING customer_id",
                (org_id, email, phone, customer.get("timezone"), customer.get("accepts_marketing")),
            ).fetchone()["customer_id"]
        return conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, email, phone, customer_id, "
            "total_price, currency, status, abandoned_at, last_activity_at) VALUES (%s, "
            "'custom', %s, %s, %s, %s, 42, 'USD', %s, now() - make_interval(secs => %s), "
            "now() - make_interval(secs => %s)) RETURNING *",
            (
                org_id,
                uuid.uuid4().hex,
                email,
                phone,
                customer_id,
                status,
                abandoned_ago,
                abandoned_ago + 60,
            ),
        ).fetchone()


def make_campaign(db, org_id, steps):
    with db.system() as conn:
        return conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status, sequence_steps) "
            "VALUES (%s, 'c', 'active', %s) RETURNING campaign_id",
            (org_id, Jsonb(steps)),
        ).fetchone()["campaign_id"]


def make_message(
    db, cart, steps, index=0, *, recipient=None, status="enqueued", campaign_id=None, sent_ago=None
):
    step = steps[index]
    campaign_id = campaign_id or make_campaign(db, cart["org_id"], steps)
    channel = step["channel"]
    if recipient is None:
        recipient = cart["email"] if channel == "email" else cart["phone"]
    with db.system() as conn:
        return conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
            "recipient, subject, template, due_at, status, sent_at) VALUES (%s, %s, %s, %s, %s, "
            "%s, %s, %s, now(), %s, now() - make_interval(secs => %s)) RETURNING *",
            (
                cart["org_id"],
                cart["cart_id"],
                campaign_id,
                index,
                channel,
                recipient,
                step.get("subject"),
                step.get("template"),
                status,
                sent_ago or 0,
            ),
        ).fetchone()


def send(message) -> dict:
    jobs.send_message(str(message["org_id"]), str(message["message_id"]))
    return row(message)


def row(message) -> dict:
    runtime = jobs.current_runtime()
    with runtime.db.system() as conn:
        return conn.execute(
            "SELECT * FROM app.outbox WHERE message_id = %s", (message["message_id"],)
        ).fetchone()


def decided(message) -> tuple:
    found = send(message)
    return found["status"], found["reason"]


def grant(db, org_id, channel, address, status="granted"):
    with db.tenant(org_id) as conn:
        record_consent(
            conn, org_id, channel=channel, address=address, status=status, source="checkout"
        )


# --- cancel: the customer bought ----------------------------------------------------------


def test_converted_cart_is_cancelled(db, shop):
    cart = make_cart(db, shop.org_id, email="a@example.com", status="converted")
    grant(db, shop.org_id, "email", "a@example.com")
    assert decided(make_message(db, cart, [EMAIL_STEP])) == ("cancelled", "cart_converted")


def test_order_since_abandonment_cancels(db, shop):
    email = "buyer@example.com"
    grant(db, shop.org_id, "email", email)
    cart = make_cart(db, shop.org_id, email=email)
    with db.system() as conn:  # an order through another cart (another device), by email
        conn.execute(
            "INSERT INTO app.orders (org_id, platform, external_id, email, "
            "total_price, ordered_at) VALUES (%s, 'custom', %s, 'Buyer@Example.com', "
            "42, now() - interval '5 minutes')",
            (shop.org_id, uuid.uuid4().hex),
        )
    assert decided(make_message(db, cart, [EMAIL_STEP])) == ("cancelled", "order_since_abandonment")


def test_order_before_the_cart_does_not_cancel(db, shop):
    email = "old-buyer@example.com"
    grant(db, shop.org_id, "email", email)
    with db.system() as conn:
        conn.execute(
            "INSERT INTO app.orders (org_id, platform, external_id, email, "
            "total_price, ordered_at) VALUES (%s, 'custom', %s, %s, 42, "
            "now() - interval '30 days')",
            (shop.org_id, uuid.uuid4().hex, email),
        )
    cart = make_cart(db, shop.org_id, email=email)
    assert decided(make_message(db, cart, [EMAIL_STEP])) == ("sent", None)


# --- consent and suppression --------------------------------------------------------------


def test_sms_needs_recorded_express_consent(db, shop):
    cart = make_cart(db, shop.org_id, phone="+12125550123")
    assert decided(make_message(db, cart, [SMS_STEP])) == ("held", "no_sms_consent")

    other = make_cart(db, shop.org_id, phone="+12125550199")
    grant(db, shop.org_id, "sms", "+1 212 555 0199")
    message = make_message(db, other, [SMS_STEP])
    assert decided(message) == ("sent", None)
    with db.system() as conn:
        mail = conn.execute(
            "SELECT * FROM app.local_mailbox WHERE message_id = %s", (message["message_id"],)
        ).fetchone()
    assert mail["channel"] == "sms" and mail["recipient"] == "+12125550199"
    assert "STOP" in mail["body_text"]


def test_withdrawn_sms_consent_holds(db, shop):
    cart = make_cart(db, shop.org_id, phone="+12125550123")
    grant(db, shop.org_id, "sms", "+12125550123")
    grant(db, shop.org_id, "sms", "+12125550123", "withdrawn")
    assert decided(make_message(db, cart, [SMS_STEP])) == ("held", "consent_withdrawn")


@pytest.mark.parametrize(
    ("policy", "evidence", "expected"),
    [
        ("opt_in", None, ("held", "no_email_consent")),
        ("opt_in", "earlier_order", ("held", "no_email_consent")),
        ("opt_in", "accepts_marketing", ("sent", None)),
        ("opt_in", "ledger", ("sent", None)),
        ("soft_opt_in", None, ("held", "no_email_consent")),
        ("soft_opt_in", "earlier_order", ("sent", None)),
        ("soft_opt_in", "earlier_order+withdrawn", ("held", "consent_withdrawn")),
        ("opt_in", "accepts_marketing+withdrawn", ("held", "consent_withdrawn")),
    ],
)
def test_email_consent_by_policy(db, shop, policy, evidence, expected):
    configure(db, shop.org_id, email_consent_policy=policy)
    email = f"e-{uuid.uuid4().hex[:6]}@example.com"
    evidence = evidence or ""
    if "earlier_order" in evidence:
        with db.system() as conn:
            conn.execute(
                "INSERT INTO app.orders (org_id, platform, external_id, email, "
                "total_price, ordered_at) VALUES (%s, 'custom', %s, %s, 10, "
                "now() - interval '90 days')",
                (shop.org_id, uuid.uuid4().hex, email),
            )
    if "ledger" in evidence:
        grant(db, shop.org_id, "email", email)
    if "withdrawn" in evidence:
        grant(db, shop.org_id, "email", email, "withdrawn")
    customer = {"accepts_marketing": True} if "accepts_marketing" in evidence else {}
    cart = make_cart(db, shop.org_id, email=email, customer=customer)
    assert decided(make_message(db, cart, [EMAIL_STEP])) == expected


@pytest.mark.parametrize(
    ("channel", "address", "reason"),
    [
        ("sms", "+12125550123", "stop"),
        ("email", "bounced@example.com", "bounce"),
        ("email", "spam@example.com", "spamreport"),
    ],
)
def test_suppressed_addresses_are_held(db, shop, channel, address, reason):
    cart = make_cart(
        db, shop.org_id, **({"phone": address} if channel == "sms" else {"email": address})
    )
    grant(db, shop.org_id, channel, address)
    with db.system() as conn:
        conn.execute(
            "INSERT INTO app.suppressions (org_id, channel, address, reason) "
            "VALUES (%s, %s, %s, %s)",
            (shop.org_id, channel, address, reason),
        )
    step = SMS_STEP if channel == "sms" else EMAIL_STEP
    assert decided(make_message(db, cart, [step])) == ("held", f"suppressed:{reason}")


# --- SMS limits ---------------------------------------------------------------------------


def test_second_sms_for_one_abandonment_is_cancelled(db, shop):
    configure(db, shop.org_id, quiet_hours=ALWAYS, frequency_caps={"sms": 0})
    cart = make_cart(db, shop.org_id, phone="+12125550123")
    grant(db, shop.org_id, "sms", "+12125550123")
    steps = [SMS_STEP, {**SMS_STEP, "delay_seconds": 60}]
    first = make_message(db, cart, steps, 0)
    second = make_message(db, cart, steps, 1, campaign_id=first["campaign_id"])
    assert decided(first) == ("sent", None)
    assert decided(second) == ("cancelled", "sms_already_sent")


def test_sms_more_than_48_hours_after_abandonment_is_cancelled(db, shop):
    cart = make_cart(db, shop.org_id, phone="+12125550123", abandoned_ago=49 * 3600)
    grant(db, shop.org_id, "sms", "+12125550123")
    assert decided(make_message(db, cart, [SMS_STEP])) == ("cancelled", "sms_window_closed")


# --- deferrals ----------------------------------------------------------------------------


def test_frequency_cap_defers_until_it_expires(db, shop):
    email = "capped@example.com"
    grant(db, shop.org_id, "email", email)
    earlier = make_message(
        db, make_cart(db, shop.org_id, email=email), [EMAIL_STEP], status="sent", sent_ago=3600
    )
    message = make_message(db, make_cart(db, shop.org_id, email=email), [EMAIL_STEP])
    status = jobs.send_message(str(message["org_id"]), str(message["message_id"]))
    after = row(message)
    assert status == "scheduled"
    assert (after["status"], after["reason"]) == ("scheduled", "deferred:frequency_cap")
    assert after["due_at"] == row(earlier)["sent_at"] + timedelta(hours=16)
    assert after["deferrals"] == 1 and after["enqueued_at"] is None

    # A shorter cap for the org: the next run sends it.
    configure(db, shop.org_id, quiet_hours=ALWAYS, frequency_caps={"email": 600})
    with db.system() as conn:
        conn.execute(
            "UPDATE app.outbox SET status = 'enqueued', due_at = now() WHERE message_id = %s",
            (message["message_id"],),
        )
    assert decided(message) == ("sent", None)


def test_quiet_hours_defer_to_the_next_allowed_instant(db, shop):
    """The store's zone (UTC here), a window that opens two hours from now: deferred to it."""
    now = datetime.now(UTC)
    opens = (now + timedelta(hours=2)).replace(second=0, microsecond=0)
    closes = opens + timedelta(hours=1)
    configure(
        db,
        shop.org_id,
        store_timezone="UTC",
        # Email is held by quiet hours only when the org lists it (quiet_hours.channels).
        quiet_hours={
            "start": opens.strftime("%H:%M"),
            "end": closes.strftime("%H:%M"),
            "channels": ["email", "sms", "push"],
        },
    )
    grant(db, shop.org_id, "email", "night@example.com")
    message = make_message(db, make_cart(db, shop.org_id, email="night@example.com"), [EMAIL_STEP])
    after = send(message)
    assert (after["status"], after["reason"]) == ("scheduled", "deferred:quiet_hours")
    assert after["due_at"] == opens
    assert after["decided_at"] is not None


def _email_message(db, org_id, cart):
    return {
        "org_id": org_id,
        "message_id": uuid.uuid4(),
        "cart_id": cart["cart_id"],
        "channel": "email",
        "recipient": cart["email"],
    }


def test_quiet_hours_use_the_recipients_zone(db, shop):
    """Phone number first, then the customer's time zone, the address, the store's zone."""
    configure(
        db,
        shop.org_id,
        # Email is held by quiet hours only when the org lists it (quiet_hours.channels).
        quiet_hours={"start": "08:00", "end": "21:00", "channels": ["email"]},
        store_timezone="Asia/Tokyo",
        email_consent_policy="opt_in",
    )
    customer = {"accepts_marketing": True}
    # 2026-01-15 22:30 in New York = 03:30 UTC on the 16th.
    at = datetime(2026, 1, 16, 3, 30, tzinfo=UTC)

    def decide(cart):
        with db.tenant(shop.org_id) as conn:
            return gate.check(conn, _email_message(db, shop.org_id, cart), cart, now=at)

    by_phone = make_cart(
        db, shop.org_id, email="ny@example.com", phone="+12125550123", customer=customer
    )
    decision = decide(by_phone)
    assert (decision.status, decision.reason) == ("deferred", "deferred:quiet_hours")
    assert decision.due_at == datetime(2026, 1, 16, 13, 0, tzinfo=UTC)  # 08:00 New York

    # Paris: 04:30 local → 08:00 CET = 07:00 UTC.
    paris = make_cart(
        db, shop.org_id, email="fr@example.com", customer={**customer, "timezone": "Europe/Paris"}
    )
    assert decide(paris).due_at == datetime(2026, 1, 16, 7, 0, tzinfo=UTC)

    # No phone, no zone: the country of the checkout's shipping address (Germany).
    germany = make_cart(db, shop.org_id, email="de@example.com", customer=customer)
    with db.system() as conn:
        conn.execute(
            "INSERT INTO raw.events (org_id, event_id, source, topic, cart_id, dedup_key, "
            "payload) VALUES (%s, gen_random_uuid(), 'test', 'checkouts/create', %s, %s, %s)",
            (
                shop.org_id,
                germany["cart_id"],
                uuid.uuid4().hex,
                Jsonb({"shipping_address": {"country_code": "DE", "province_code": "BE"}}),
            ),
        )
    assert decide(germany).due_at == datetime(2026, 1, 16, 7, 0, tzinfo=UTC)

    # Nothing known about the recipient: the store's zone. 12:30 in Tokyo is allowed.
    unknown = make_cart(db, shop.org_id, email="x@example.com", customer=customer)
    assert decide(unknown) is None


def test_florida_numbers_follow_the_stricter_regional_window(db, shop):
    configure(
        db,
        shop.org_id,
        quiet_hours={
            "start": "08:00",
            "end": "21:00",
            "regions": {"US-FL": {"start": "08:00", "end": "20:00"}},
        },
    )
    cart = make_cart(db, shop.org_id, phone="+13055550123")
    grant(db, shop.org_id, "sms", "+13055550123")
    grant(db, shop.org_id, "sms", "+12125550123")
    message = {
        "org_id": shop.org_id,
        "message_id": uuid.uuid4(),
        "cart_id": cart["cart_id"],
        "channel": "sms",
        "recipient": "+13055550123",
    }
    at = datetime(2026, 1, 16, 1, 30, tzinfo=UTC)  # 20:30 EST: open in New York, not Florida
    # The decision at ``at`` for a cart abandoned an hour before it (inside the SMS window).
    then = {
        **cart,
        "abandoned_at": at - timedelta(hours=1),
        "last_activity_at": at - timedelta(hours=1),
    }
    with db.tenant(shop.org_id) as conn:
        decision = gate.check(conn, message, then, now=at)
        # The same instant is fine for a New York number.
        assert (
            gate.check(
                conn,
                {**message, "recipient": "+12125550123"},
                {**then, "phone": "+12125550123"},
                now=at,
            )
            is None
        )
    assert (decision.status, decision.reason) == ("deferred", "deferred:quiet_hours")
    assert decision.due_at == datetime(2026, 1, 16, 13, 0, tzinfo=UTC)  # 08:00 EST


# --- push ---------------------------------------------------------------------------------


def test_push_without_subscription_is_held_at_enrollment(db, shop):
    make_campaign(db, shop.org_id, [EMAIL_STEP, PUSH_STEP])
    cart = make_cart(db, shop.org_id, email="p@example.com")
    with db.system() as conn:
        assert enrollment.enroll(conn, dict(cart)) == 2
        rows = conn.execute(
            "SELECT channel, status, reason FROM app.outbox WHERE cart_id = %s ORDER BY step_index",
            (cart["cart_id"],),
        ).fetchall()
    assert rows == [
        {"channel": "email", "status": "scheduled", "reason": None},
        {"channel": "push", "status": "held", "reason": "no_push_subscription"},
    ]


def test_push_needs_a_live_subscription_at_send_time(db, shop):
    cart = make_cart(db, shop.org_id, email="p@example.com")
    with db.system() as conn:
        subscription_id = conn.execute(
            "INSERT INTO app.push_subscriptions (org_id, cart_id, endpoint, p256dh, auth) "
            "VALUES (%s, %s, %s, 'key', 'auth') RETURNING subscription_id",
            (shop.org_id, cart["cart_id"], f"https://push.example.com/{uuid.uuid4().hex}"),
        ).fetchone()["subscription_id"]
        assert enrollment.subscription_for(conn, dict(cart)) == str(subscription_id)
    first = make_message(db, cart, [PUSH_STEP], recipient=str(subscription_id))
    assert decided(first) == ("sent", None)

    with db.system() as conn:  # the push service answered 410: the subscription is gone
        conn.execute(
            "DELETE FROM app.push_subscriptions WHERE subscription_id = %s", (subscription_id,)
        )
    configure(db, shop.org_id, quiet_hours=ALWAYS, frequency_caps={"push": 0})
    second = make_message(db, cart, [PUSH_STEP], recipient=str(subscription_id))
    assert decided(second) == ("held", "no_push_subscription")


# --- no double send -----------------------------------------------------------------------


def test_a_decided_message_is_not_decided_again(db, shop):
    cart = make_cart(db, shop.org_id, phone="+12125550123")
    message = make_message(db, cart, [SMS_STEP])
    assert decided(message) == ("held", "no_sms_consent")
    grant(db, shop.org_id, "sms", "+12125550123")  # consent later does not resend a held one
    assert jobs.send_message(str(message["org_id"]), str(message["message_id"])) == "skipped"
    assert row(message)["status"] == "held"


# --- coupons: only for messages that go -----------------------------------------------------


def test_coupon_is_created_only_when_the_step_is_sent(db, shop):
    steps = [
        {
            **EMAIL_STEP,
            "template": "cart_reminder_discount",
            "discount": {"type": "percentage", "value": 10, "expires_in_hours": 72},
        }
    ]
    cart = make_cart(db, shop.org_id, email="coupon@example.com")
    held = make_message(db, cart, steps)
    assert decided(held) == ("held", "no_email_consent")
    with db.system() as conn:
        assert (
            conn.execute(
                "SELECT count(*) AS n FROM app.coupons WHERE org_id = %s", (shop.org_id,)
            ).fetchone()["n"]
            == 0
        )

    grant(db, shop.org_id, "email", "coupon@example.com")
    broken = [{**steps[0], "template": "<p>{{ coupon.code }} {{ no_such_variable }}</p>"}]
    failed = decided(
        make_message(db, make_cart(db, shop.org_id, email="coupon@example.com"), broken)
    )
    assert failed[0] == "held" and failed[1].startswith("template_error: ")
    with db.system() as conn:  # a template that cannot render leaves no code behind
        assert (
            conn.execute(
                "SELECT count(*) AS n FROM app.coupons WHERE org_id = %s", (shop.org_id,)
            ).fetchone()["n"]
            == 0
        )

    sent = make_message(db, make_cart(db, shop.org_id, email="coupon@example.com"), steps)
    assert decided(sent) == ("sent", None)
    with db.system() as conn:
        coupon = conn.execute(
            "SELECT * FROM app.coupons WHERE org_id = %s", (shop.org_id,)
        ).fetchone()
        mail = conn.execute(
            "SELECT * FROM app.local_mailbox WHERE message_id = %s", (sent["message_id"],)
        ).fetchone()
    assert coupon["message_id"] == sent["message_id"] and coupon["type"] == "percentage"
    assert coupon["code"] in mail["body_text"] and coupon["code"] in mail["body_html"]


# --- an opt-out that came before any org knew the number -----------------------------------

TWILIO_TOKEN = "gate-test-token"
SHARED_SERVICE = "MG" + "e" * 32


def _text_shared_sender(client, phone: str, body: str) -> str:
    """POST a signed inbound SMS from ``phone`` to the shared sender; the TwiML answer."""
    params = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "From": phone,
        "To": "+15035559876",
        "MessagingServiceSid": SHARED_SERVICE,
        "Body": body,
    }
    url = "http://testserver/api/webhooks/twilio/inbound"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
    response = client.post(
        "/api/webhooks/twilio/inbound",
        data=urlencode(params),
        headers={"X-Twilio-Signature": signature},
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_stop_from_a_number_no_org_knows_holds_for_a_later_cart(db, settings, shop):
    app = create_app(
        with_overrides(
            settings, twilio_auth_token=TWILIO_TOKEN, twilio_messaging_service_sid=SHARED_SERVICE
        )
    )
    client = app.test_client()
    phone = f"+1503555{8000 + uuid.uuid4().int % 1000:04d}"

    assert "You are unsubscribed" in _text_shared_sender(client, phone, "STOP")
    with db.system() as conn:
        kept = [r["address_hash"] for r in conn.execute("SELECT * FROM app.global_suppressions")]
    assert kept and not any(phone[2:] in k for k in kept)  # a salted hash, not the number

    # Later, a store's cart carries that number, even with consent recorded at checkout: the
    # STOP we confirmed still holds.
    cart = make_cart(db, shop.org_id, phone=phone)
    grant(db, shop.org_id, "sms", phone)
    assert decided(make_message(db, cart, [SMS_STEP])) == ("held", "suppressed:stop")

    # START to the same sender lifts it.
    assert "You are resubscribed" in _text_shared_sender(client, phone, "START")
    again = make_cart(db, shop.org_id, phone=phone)
    assert decided(make_message(db, again, [SMS_STEP])) == ("sent", None)


def test_stop_to_the_shared_sender_holds_for_an_org_that_meets_the_number_later(
    db, settings, shop, make_org
):
    app = create_app(
        with_overrides(
            settings, twilio_auth_token=TWILIO_TOKEN, twilio_messaging_service_sid=SHARED_SERVICE
        )
    )
    client = app.test_client()
    phone = f"+1503555{9000 + uuid.uuid4().int % 1000:04d}"
    grant(db, shop.org_id, "sms", phone)  # the first store knows the number

    assert "You are unsubscribed" in _text_shared_sender(client, phone, "STOP")

    later = make_org("later")
    configure(db, later.org_id, quiet_hours=ALWAYS)
    cart = make_cart(db, later.org_id, phone=phone)
    grant(db, later.org_id, "sms", phone)
    assert decided(make_message(db, cart, [SMS_STEP])) == ("held", "suppressed:stop")
    _text_shared_sender(client, phone, "START")  # leave the number unsuppressed
