"""One cart from a signed Shopify webhook to recovered revenue, through the real parts:
Flask ingest, Postgres, the scheduler tick, an RQ worker on Redis, the SendGrid SDK (against
a local server standing in for SendGrid), the signed SendGrid event webhook, the order
webhook, the REST API, and `dbt build` of the marts.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from conftest import (
    fixture_bytes,
    fixture_headers,
    fixture_vectors,
    remove_queue,
    shopify_hmac,
    wait_for,
)
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cartrecovery import tenancy
from cartrecovery.org_settings import update_settings
from cartrecovery.settings import with_overrides
from delivery import jobs, scheduler
from delivery.worker import run_worker

pytestmark = pytest.mark.slow

SHOP = "example-outfitters.myshopify.com"
SECRET = fixture_vectors()["shopify"]["client_secret"]
CHECKOUT = "shopify_checkouts_create.json"
ORDER = "shopify_orders_create.json"


class SendGridSigner:
    """Signs event-webhook bodies as SendGrid does (ECDSA P-256 over timestamp + body)."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes) -> dict:
        timestamp = str(int(time.time()))
        signature = self.key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }


@pytest.fixture()
def stack(settings, db, recorder):
    """The app and a runtime wired to the recorder as SendGrid, on a queue of its own."""
    from ingest.app import create_app

    signer = SendGridSigner()
    recorder.respond("POST", "/v3/mail/send", 202, b"", {"X-Message-Id": "sg-e2e-1"})
    test_settings = with_overrides(
        settings,
        queue_name=f"{settings.queue_name}-e2e-{uuid.uuid4().hex[:6]}",
        sendgrid_api_key="SG.e2e-test-key",
        sendgrid_base_url=recorder.url,
        sendgrid_webhook_public_key=signer.public_key,
        from_email="hello@example-outfitters.com",
    )
    app = create_app(test_settings)
    rt = app.extensions["cartrecovery"]
    jobs.configure(rt)
    # The fixture's shop can be connected to one org at a time; this run's org takes it.
    with db.system() as conn:
        conn.execute(
            "UPDATE app.connections SET status = 'removed' "
            "WHERE platform = 'shopify' AND shop_domain = %s",
            (SHOP,),
        )
    org_id = tenancy.create_org(db, "Example Outfitters")
    key = tenancy.create_api_key(db, org_id, "admin")
    # Quiet hours open all day: the test must not depend on the time of day it runs at.
    with db.tenant(org_id) as conn:
        update_settings(conn, org_id, {"quiet_hours": {"start": "00:00", "end": "24:00"}})
    tenancy.add_connection(db, rt.encryption_key, org_id, "shopify", SHOP, SECRET)
    yield {
        "client": app.test_client(),
        "rt": rt,
        "settings": test_settings,
        "org_id": org_id,
        "auth": {"Authorization": f"Bearer {key}"},
        "signer": signer,
    }
    jobs.configure(None)
    remove_queue(rt)


def post_shopify(client, name: str, route: str, body: bytes | None = None):
    headers = fixture_headers("shopify", name)
    if body is not None:
        headers["X-Shopify-Hmac-Sha256"] = shopify_hmac(SECRET, body)
        headers["X-Shopify-Webhook-Id"] = str(uuid.uuid4())
    return client.post(
        route, data=body if body is not None else fixture_bytes(name), headers=headers
    )


def one_email_campaign(client, auth, *, timeout: int, name: str) -> None:
    """The org's abandonment timeout and an active campaign of one immediate email."""
    assert (
        client.patch(
            "/api/v1/settings", json={"abandonment_timeout_seconds": timeout}, headers=auth
        ).status_code
        == 200
    )
    assert (
        client.post(
            "/api/v1/campaigns",
            headers=auth,
            json={
                "name": name,
                "status": "active",
                "sequence_steps": [
                    {
                        "channel": "email",
                        "delay_seconds": 0,
                        "subject": "Hi",
                        "template": "cart_reminder",
                    }
                ],
            },
        ).status_code
        == 201
    )


def mails(recorder, org_id) -> list[dict]:
    """SendGrid requests for ``org_id``'s messages. The scheduler's tick and the worker serve
    every org of the shared test database, so other tests' due messages may be sent too."""
    return [
        r
        for r in recorder.find("POST", "/v3/mail/send")
        if json.loads(r["body"]).get("custom_args", {}).get("org_id") == str(org_id)
    ]


def tick_until(rt, condition):
    def step():
        scheduler.tick(rt)
        return condition()

    return wait_for(step, timeout=30)


def test_one_cart_from_webhook_to_recovered_revenue(stack, recorder, db, database_url):
    client, rt, auth = stack["client"], stack["rt"], stack["auth"]

    # The marketer sets a short abandonment timeout and an active one-step email campaign.
    r = client.patch("/api/v1/settings", json={"abandonment_timeout_seconds": 1}, headers=auth)
    assert r.status_code == 200, r.json
    r = client.post(
        "/api/v1/campaigns",
        headers=auth,
        json={
            "name": "Come back",
            "status": "active",
            "sequence_steps": [
                {
                    "channel": "email",
                    "delay_seconds": 0,
                    "subject": "{{ store.name }}: your cart is waiting",
                    "template": "cart_reminder",
                }
            ],
        },
    )
    assert r.status_code == 201, r.json
    campaign_id = r.json["campaign_id"]

    # The store posts the signed checkout from the fixtures.
    r = post_shopify(client, CHECKOUT, "/api/webhooks/shopify/checkout-create")
    assert r.status_code == 200, r.json
    carts = client.get("/api/v1/carts?email=jane.doe@example.com", headers=auth).json["carts"]
    assert [c["status"] for c in carts] == ["active"]
    cart_id = carts[0]["cart_id"]
    checkout = json.loads(fixture_bytes(CHECKOUT))

    # After the timeout the scheduler abandons it and queues the first step.
    def enqueued():
        cart = client.get(f"/api/v1/carts/{cart_id}", headers=auth).json
        return cart["status"] == "abandoned" and [m["status"] for m in cart["messages"]] == [
            "enqueued"
        ]

    tick_until(rt, enqueued)

    # The RQ worker sends it through the SendGrid SDK.
    run_worker(stack["settings"], burst=True)
    sends = mails(recorder, stack["org_id"])
    assert len(sends) == 1
    mail = json.loads(sends[0]["body"])
    assert sends[0]["headers"]["Authorization"] == "Bearer SG.e2e-test-key"
    assert mail["personalizations"][0]["to"][0]["email"] == "jane.doe@example.com"
    subject = mail.get("subject") or mail["personalizations"][0].get("subject")
    assert subject == "Example Outfitters: your cart is waiting"
    html = next(c["value"] for c in mail["content"] if c["type"] == "text/html")
    # The restore link is our signed /r/ link, which leads to the platform's recovery URL.
    links = re.findall(r'href="(http://testserver/r/[^"]+)"', html)
    assert links, "the email carries no restore link"
    restore = client.get(links[0].replace("http://testserver", ""))
    assert restore.status_code == 302
    assert restore.headers["Location"].startswith(checkout["abandoned_checkout_url"])
    custom = mail.get("custom_args") or mail["personalizations"][0].get("custom_args")
    message_id = custom["message_id"]
    assert custom["org_id"] == str(stack["org_id"])

    detail = client.get(f"/api/v1/carts/{cart_id}", headers=auth).json
    assert [(m["channel"], m["step"], m["status"]) for m in detail["messages"]] == [
        ("email", 0, "sent")
    ]

    # The shopper clicks: SendGrid posts a signed click event.
    click = [
        {
            "email": "jane.doe@example.com",
            "event": "click",
            "timestamp": int(time.time()),
            "url": checkout["abandoned_checkout_url"],
            "sg_event_id": f"click-{uuid.uuid4().hex}",
            "sg_message_id": "sg-e2e-1.filter",
            "message_id": message_id,
            "org_id": str(stack["org_id"]),
        }
    ]
    body = json.dumps(click).encode()
    r = client.post(
        "/api/webhooks/sendgrid/events", data=body, headers=stack["signer"].headers(body)
    )
    assert r.status_code == 200, r.json

    # Then buys: the order webhook (the fixture order, placed now) makes it a recovery.
    order = json.loads(fixture_bytes(ORDER))
    now = datetime.now(UTC).isoformat()
    order.update(created_at=now, updated_at=now, processed_at=now)
    r = post_shopify(
        client, ORDER, "/api/webhooks/shopify/order-create", json.dumps(order).encode()
    )
    assert r.status_code == 200, r.json

    detail = client.get(f"/api/v1/carts/{cart_id}", headers=auth).json
    assert detail["status"] == "recovered"
    revenue = Decimal(order["total_price"])
    assert Decimal(str(detail["recovered_revenue"])) == revenue
    assert detail["order"] is not None

    metrics = client.get("/api/v1/analytics/dashboard?period=30d", headers=auth).json
    assert metrics["carts_recovered"] == 1
    assert metrics["messages_sent"] == 1
    assert Decimal(str(metrics["revenue_recovered"])) == revenue

    # The data team's marts agree after `dbt build`.
    from pipelines.dbt_build import run_dbt_build

    run_dbt_build(database_url)
    with db.system() as conn:
        schema = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'fct_recoveries'"
        ).fetchone()["table_schema"]
        rows = conn.execute(
            f'SELECT * FROM "{schema}".fct_recoveries WHERE org_id = %s', (stack["org_id"],)
        ).fetchall()
    assert len(rows) == 1
    assert str(rows[0]["cart_id"]) == cart_id
    assert Decimal(rows[0]["revenue"]) == revenue
    assert str(rows[0]["campaign_id"]) == campaign_id
    assert rows[0]["channel"] == "email"


def test_redelivered_checkout_is_one_cart_and_one_message(stack, recorder):
    client, rt, auth = stack["client"], stack["rt"], stack["auth"]
    one_email_campaign(client, auth, timeout=1, name="Once")
    for _ in range(3):
        assert (
            post_shopify(client, CHECKOUT, "/api/webhooks/shopify/checkout-create").status_code
            == 200
        )
    carts = client.get("/api/v1/carts", headers=auth).json["carts"]
    assert len(carts) == 1
    cart_id = carts[0]["cart_id"]
    tick_until(rt, lambda: client.get(f"/api/v1/carts/{cart_id}", headers=auth).json["messages"])
    run_worker(stack["settings"], burst=True)
    # A second worker pass and more ticks change nothing.
    scheduler.tick(rt)
    run_worker(stack["settings"], burst=True)
    assert len(mails(recorder, stack["org_id"])) == 1
    detail = client.get(f"/api/v1/carts/{cart_id}", headers=auth).json
    assert len(detail["events"]) == 1
    assert [m["status"] for m in detail["messages"]] == ["sent"]


def test_order_before_the_timeout_means_no_message(stack, recorder):
    client, rt, auth = stack["client"], stack["rt"], stack["auth"]
    one_email_campaign(client, auth, timeout=3600, name="Never")
    post_shopify(client, CHECKOUT, "/api/webhooks/shopify/checkout-create")
    post_shopify(client, ORDER, "/api/webhooks/shopify/order-create")
    # Even once the timeout has long passed, a converted cart is never abandoned.
    client.patch("/api/v1/settings", json={"abandonment_timeout_seconds": 1}, headers=auth)
    cart = client.get("/api/v1/carts", headers=auth).json["carts"][0]
    assert cart["status"] == "converted"
    wait_for(
        lambda: (
            scheduler.tick(rt) is not None
            and client.get(f"/api/v1/carts/{cart['cart_id']}", headers=auth).json["status"]
            == "converted"
        )
    )
    run_worker(stack["settings"], burst=True)
    assert mails(recorder, stack["org_id"]) == []
    assert client.get(f"/api/v1/carts/{cart['cart_id']}", headers=auth).json["messages"] == []


def test_order_between_enqueue_and_send_means_no_message(stack, recorder):
    client, rt, auth = stack["client"], stack["rt"], stack["auth"]
    one_email_campaign(client, auth, timeout=1, name="Gate")
    post_shopify(client, CHECKOUT, "/api/webhooks/shopify/checkout-create")
    cart_id = client.get("/api/v1/carts", headers=auth).json["carts"][0]["cart_id"]
    tick_until(
        rt,
        lambda: (
            [
                m["status"]
                for m in client.get(f"/api/v1/carts/{cart_id}", headers=auth).json["messages"]
            ]
            == ["enqueued"]
        ),
    )
    # The job is in Redis; the order lands before any worker picks it up. (The scheduler
    # ticks for every org of the test database, so the queue may also hold other orgs' jobs.)
    [waiting] = client.get(f"/api/v1/carts/{cart_id}", headers=auth).json["messages"]
    assert waiting["message_id"] in jobs.queue(rt).job_ids
    post_shopify(client, ORDER, "/api/webhooks/shopify/order-create")
    run_worker(stack["settings"], burst=True)
    assert mails(recorder, stack["org_id"]) == []
    message = client.get(f"/api/v1/carts/{cart_id}", headers=auth).json["messages"][0]
    assert message["status"] == "cancelled"
    assert message["reason"] == "cart_converted"
