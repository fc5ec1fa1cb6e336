"""POST /api/v1/campaigns/{id}/preview: a step rendered for a cart; nothing sent or created."""

from __future__ import annotations

import uuid

from psycopg.types.json import Jsonb

from cartrecovery import tenancy

EMAIL = {
    "channel": "email",
    "delay_seconds": 0,
    "subject": "{{ store.name }}: still yours",
    "template": "cart_reminder",
    "variants": [{"name": "b", "subject": "Hey {{ customer.first_name }}", "weight": 1}],
}
DISCOUNT = {
    "channel": "email",
    "delay_seconds": 3600,
    "subject": "{{ coupon.description }}",
    "template": "cart_reminder_discount",
    "discount": {"type": "percentage", "value": 10, "expires_in_hours": 72},
}
SMS = {"channel": "sms", "delay_seconds": 7200, "template": "sms_reminder"}
PUSH = {
    "channel": "push",
    "delay_seconds": 9000,
    "subject": "Still thinking?",
    "template": "push_reminder",
}
BROKEN = {
    "channel": "email",
    "delay_seconds": 0,
    "subject": "s",
    "template": "<p>{{ customer.shoe_size }}</p>",
}
HOSTILE = {
    "channel": "email",
    "delay_seconds": 0,
    "subject": "s",
    "template": "<p>{{ ''.__class__.__mro__[1].__subclasses__() }}</p>",
}


def _campaign(db, org_id, steps, conditions=None):
    with db.system() as conn:
        return conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status, trigger_conditions, "
            "sequence_steps) VALUES (%s, 'preview me', 'draft', %s, %s) RETURNING campaign_id",
            (org_id, Jsonb(conditions or {}), Jsonb(steps)),
        ).fetchone()["campaign_id"]


def _cart(db, org_id):
    with db.system() as conn:
        customer_id = conn.execute(
            "INSERT INTO app.customers (org_id, email, first_name) VALUES (%s, %s, 'Jo') "
            "RETURNING customer_id",
            (org_id, f"jo-{uuid.uuid4().hex[:6]}@example.com"),
        ).fetchone()["customer_id"]
        return conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, customer_id, email, currency,"
            " total_price, line_items, restore_url) VALUES (%s, 'custom', %s, %s, "
            "'jo@example.com', 'EUR', 30, %s, 'https://shop.test/cart/1') RETURNING cart_id",
            (
                org_id,
                uuid.uuid4().hex,
                customer_id,
                Jsonb(
                    [
                        {
                            "title": "Rain <Jacket>",
                            "quantity": 1,
                            "price": "30.00",
                            "image_url": "https://cdn.test/jacket.jpg",
                        }
                    ]
                ),
            ),
        ).fetchone()["cart_id"]


def _preview(client, org, campaign_id, body=None, headers=None):
    return client.post(
        f"/api/v1/campaigns/{campaign_id}/preview", json=body, headers=headers or org.headers
    )


def _rows(db, table, org_id):
    with db.system() as conn:
        return conn.execute(f"SELECT * FROM {table} WHERE org_id = %s", (org_id,)).fetchall()


def test_email_step_for_a_sample_cart(client, db, org):
    campaign_id = _campaign(db, org.org_id, [EMAIL])
    response = client.post(f"/api/v1/campaigns/{campaign_id}/preview", headers=org.headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"channel", "subject", "html", "text"}
    assert body["channel"] == "email"
    assert body["subject"].endswith(": still yours")
    assert "Merino Wool Beanie" in body["html"] and "$66.50" in body["html"]
    assert 'href="http://testserver/r/preview"' in body["html"]
    assert "Hi Alex," in body["text"]
    assert _rows(db, "app.outbox", org.org_id) == []
    assert _rows(db, "app.local_mailbox", org.org_id) == []


def test_email_step_for_a_real_cart(client, db, org):
    campaign_id = _campaign(db, org.org_id, [EMAIL])
    cart_id = _cart(db, org.org_id)
    body = _preview(client, org, campaign_id, {"step": 0, "cart_id": str(cart_id)}).get_json()
    assert "Rain &lt;Jacket&gt;" in body["html"] and "€30.00" in body["html"]
    assert 'src="https://cdn.test/jacket.jpg"' in body["html"]
    assert "Hi Jo," in body["text"] and "Rain <Jacket>" in body["text"]
    assert "https://shop.test/cart/1" not in body["html"]  # links go through /r/ only


def test_variant(client, db, org):
    campaign_id = _campaign(db, org.org_id, [EMAIL])
    body = _preview(client, org, campaign_id, {"variant": "b"}).get_json()
    assert body["subject"] == "Hey Alex"
    response = _preview(client, org, campaign_id, {"variant": "zzz"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "unknown_variant"


def test_discount_step_shows_a_placeholder_code_and_creates_none(client, db, org, recorder):
    tenancy.add_connection(
        db,
        _key(client),
        org.org_id,
        "shopify",
        f"s-{uuid.uuid4().hex[:8]}.myshopify.com",
        "whsec",
        {"access_token": "t", "api_base_url": recorder.url},
    )
    campaign_id = _campaign(db, org.org_id, [EMAIL, DISCOUNT])
    body = _preview(client, org, campaign_id, {"step": 1}).get_json()
    assert body["subject"] == "10% off"
    assert "PREVIEW-CODE" in body["html"] and "PREVIEW-CODE" in body["text"]
    assert _rows(db, "app.coupons", org.org_id) == []
    assert recorder.requests == []


def _key(client):
    return client.application.extensions["cartrecovery"].encryption_key


def test_sms_and_push_steps(client, db, org):
    campaign_id = _campaign(db, org.org_id, [EMAIL, SMS, PUSH])
    sms = _preview(client, org, campaign_id, {"step": 1}).get_json()
    assert sms["channel"] == "sms" and sms["html"] == ""
    assert "http://testserver/r/preview" in sms["text"]
    assert sms["text"].endswith("Reply STOP to opt out")
    push = _preview(client, org, campaign_id, {"step": 2}).get_json()
    assert push == {
        "channel": "push",
        "title": "Still thinking?",
        "body": "Alex, you left 3 items in your cart.",
        "url": "http://testserver/r/preview",
    }


def test_render_errors_are_422(client, db, org):
    campaign_id = _campaign(db, org.org_id, [BROKEN, HOSTILE])
    response = _preview(client, org, campaign_id, {"step": 0})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "render_error" and "shoe_size" in error["message"]
    response = _preview(client, org, campaign_id, {"step": 1})
    assert response.status_code == 422
    assert "SecurityError" in response.get_json()["error"]["message"]
    assert "<class" not in response.get_data(as_text=True)  # nothing was rendered


def test_discount_template_without_offer_is_422(client, db, org):
    step = {**DISCOUNT}
    step.pop("discount")
    campaign_id = _campaign(db, org.org_id, [step])
    assert _preview(client, org, campaign_id, {}).status_code == 422


def test_bad_requests(client, db, org):
    campaign_id = _campaign(db, org.org_id, [EMAIL])
    response = _preview(client, org, campaign_id, {"step": 3})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_step"
    for body in ({"step": -1}, {"step": "0"}, {"cart_id": "nope"}, {"extra": 1}):
        response = _preview(client, org, campaign_id, body)
        assert response.status_code == 400, body
        assert response.get_json()["error"]["code"] == "validation_error"
    assert _preview(client, org, "not-a-uuid", {}).status_code == 404
    assert _preview(client, org, uuid.uuid4(), {}).status_code == 404
    response = _preview(client, org, campaign_id, {"cart_id": str(uuid.uuid4())})
    assert response.status_code == 404


def test_other_orgs_campaign_and_cart_are_404(client, db, org, make_org):
    other = make_org("other")
    theirs = _campaign(db, other.org_id, [EMAIL])
    their_cart = _cart(db, other.org_id)
    assert _preview(client, org, theirs, {}).status_code == 404
    mine = _campaign(db, org.org_id, [EMAIL])
    response = _preview(client, org, mine, {"cart_id": str(their_cart)})
    assert response.status_code == 404
    assert "Rain" not in response.get_data(as_text=True)


def test_keys(client, db, org):
    campaign_id = _campaign(db, org.org_id, [EMAIL])
    read_key = tenancy.create_api_key(db, org.org_id, "read")
    assert (
        _preview(client, org, campaign_id, {}, {"Authorization": f"Bearer {read_key}"}).status_code
        == 200
    )
    publishable = tenancy.create_api_key(db, org.org_id, "publishable")
    assert (
        _preview(
            client, org, campaign_id, {}, {"Authorization": f"Bearer {publishable}"}
        ).status_code
        == 403
    )
    assert client.post(f"/api/v1/campaigns/{campaign_id}/preview").status_code == 401
