"""``/api/v1/connections``: connect, list, read, disconnect, rotate secrets, credentials;
roles, tenant isolation and errors."""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import fixture_bytes, fixture_headers, shopify_hmac

from cartrecovery import tenancy
from integrations import registry
from integrations.shopify.adapter import TOPIC_PATHS

CHECKOUT = "shopify_checkouts_create.json"
FIXTURE_SHOP = "example-outfitters.myshopify.com"


def domain(prefix: str = "shop") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}.myshopify.com"


def create(client, org, **body):
    return client.post("/api/v1/connections", headers=org.headers, json=body)


def one(db, sql: str, *params):
    with db.system() as conn:
        return conn.execute(sql, params).fetchone()


def deliver_checkout(client, shop: str, secret: str, webhook_id: str | None = None):
    body = fixture_bytes(CHECKOUT)
    headers = fixture_headers("shopify", CHECKOUT) | {
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": shopify_hmac(secret, body),
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
    }
    return client.post("/api/webhooks/shopify/checkout-create", data=body, headers=headers)


@pytest.fixture()
def free_fixture_shop(db):
    """The fixture shop domain, freed from the org of any earlier test."""
    with db.system() as conn:
        conn.execute(
            "UPDATE app.connections SET status = 'removed' WHERE shop_domain = %s", (FIXTURE_SHOP,)
        )
    return FIXTURE_SHOP


def test_create_shopify_connection_lists_every_topic_url(client, db, org, settings):
    shop = domain()
    response = create(
        client, org, platform="shopify", shop_domain=shop.upper(), secret="shpss_given_secret_123"
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["platform"] == "shopify" and body["shop_domain"] == shop
    assert body["status"] == "active"
    assert "secret" not in body  # given, so not echoed
    assert set(body["topics"]) == set(TOPIC_PATHS) and len(body["topics"]) == 11
    assert body["webhook_urls"]["checkouts/create"] == (
        f"{settings.app_url}/api/webhooks/shopify/checkout-create"
    )
    assert body["webhook_urls"]["customers/data_request"].endswith(
        "/api/webhooks/shopify/customers-data-request"
    )
    assert body["webhook_urls"]["app/uninstalled"].endswith("/api/webhooks/shopify/app-uninstalled")
    uuid.UUID(body["connection_id"])

    assert deliver_checkout(client, shop, "shpss_given_secret_123").status_code == 200


def test_generated_secret_is_shown_once_and_works(client, db, org):
    shop = domain()
    body = create(client, org, platform="shopify", shop_domain=shop).get_json()
    secret = body["secret"]
    assert len(secret) >= 24
    listed = client.get("/api/v1/connections", headers=org.headers)
    assert listed.status_code == 200
    assert secret not in listed.get_data(as_text=True)
    one_conn = client.get(f"/api/v1/connections/{body['connection_id']}", headers=org.headers)
    assert secret not in one_conn.get_data(as_text=True)
    assert deliver_checkout(client, shop, secret).status_code == 200


def test_platform_webhook_urls_come_from_the_adapters(client, org, settings):
    for platform in ("woocommerce", "bigcommerce", "magento", "generic"):
        body = create(client, org, platform=platform, shop_domain=domain(platform)).get_json()
        urls = body["webhook_urls"]
        assert urls == registry.webhook_urls(settings.app_url, platform, body["connection_id"])
        assert urls and all(
            u.startswith(f"{settings.app_url}/api/webhooks/") for u in urls.values()
        )
        assert body["topics"] == list(urls)
        assert body["custom_webhook_url"] == (
            f"{settings.app_url}/api/webhooks/custom/{body['connection_id']}"
        )
    assert set(urls.values()) == {body["custom_webhook_url"]}  # generic: the custom route


def test_credentials_are_encrypted_at_rest_and_never_listed(client, db, org, runtime):
    token = f"bc-token-{uuid.uuid4().hex}"
    body = create(
        client,
        org,
        platform="bigcommerce",
        shop_domain=domain("stores-abc"),
        secret="bc-custom-header-value",
        credentials={"access_token": token, "store_hash": "abc123"},
    ).get_json()
    connection_id = uuid.UUID(body["connection_id"])
    assert body["has_credentials"] is True
    stored = one(db, "SELECT * FROM app.connections WHERE connection_id = %s", connection_id)
    assert token.encode() not in bytes(stored["credentials_ciphertext"])
    assert b"bc-custom-header-value" not in bytes(stored["secret_ciphertext"])
    listed = client.get("/api/v1/connections", headers=org.headers).get_data(as_text=True)
    assert token not in listed and "bc-custom-header-value" not in listed

    connection = tenancy.get_connection(db, runtime.encryption_key, connection_id)
    assert connection.credentials == {"access_token": token, "store_hash": "abc123"}

    # Replaced, then removed, through the API.
    put = client.put(
        f"/api/v1/connections/{connection_id}/credentials",
        headers=org.headers,
        json={"credentials": {"access_token": "new"}},
    )
    assert put.status_code == 200
    assert tenancy.get_connection(db, runtime.encryption_key, connection_id).credentials == {
        "access_token": "new"
    }
    client.put(
        f"/api/v1/connections/{connection_id}/credentials",
        headers=org.headers,
        json={"credentials": None},
    )
    assert tenancy.get_connection(db, runtime.encryption_key, connection_id).credentials is None


def test_add_connection_takes_credentials_as_dict_or_json_text(db, org, runtime):
    key = runtime.encryption_key
    first = tenancy.add_connection(
        db, key, org.org_id, "magento", domain("m1"), "s3cret-m1", credentials={"token": "a"}
    )
    second = tenancy.add_connection(
        db, key, org.org_id, "magento", domain("m2"), "s3cret-m2", credentials='{"token": "b"}'
    )
    assert tenancy.get_connection(db, key, first).credentials == {"token": "a"}
    assert tenancy.get_connection(db, key, second).credentials == {"token": "b"}
    with pytest.raises(ValueError):
        tenancy.add_connection(db, key, org.org_id, "magento", domain("m3"), "s", "not json")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"platform": "nope", "shop_domain": "x.example"}, 400, "unknown_platform"),
        ({"platform": "shopify"}, 400, "validation_error"),
        ({"platform": "shopify", "shop_domain": ""}, 400, "validation_error"),
        ({"platform": "shopify", "shop_domain": "a b.example"}, 400, "validation_error"),
        (
            {"platform": "shopify", "shop_domain": "x.example", "secret": "short"},
            400,
            "validation_error",
        ),
        (
            {"platform": "shopify", "shop_domain": "x.example", "credentials": "token"},
            400,
            "validation_error",
        ),
        ({"platform": "shopify", "shop_domain": "x.example", "extra": 1}, 400, "validation_error"),
        ("not json", 400, "validation_error"),
        ([], 400, "validation_error"),
    ],
)
def test_bad_create_requests_are_400_and_store_nothing(client, db, org, body, status, code):
    data = body if isinstance(body, str) else json.dumps(body)
    response = client.post(
        "/api/v1/connections", headers=org.headers, data=data, content_type="application/json"
    )
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert (
        one(db, "SELECT count(*) AS n FROM app.connections WHERE org_id = %s", org.org_id)["n"] == 0
    )


def test_roles(client, db, org):
    read_key = tenancy.create_api_key(db, org.org_id, "read")
    write_key = tenancy.create_api_key(db, org.org_id, "write")
    connection_id = create(client, org, platform="shopify", shop_domain=domain()).get_json()[
        "connection_id"
    ]
    for key in (read_key, write_key):
        headers = {"Authorization": f"Bearer {key}"}
        assert (
            create(
                client,
                type("K", (), {"headers": headers}),
                platform="shopify",
                shop_domain=domain(),
            ).status_code
            == 403
        )
        assert (
            client.delete(f"/api/v1/connections/{connection_id}", headers=headers).status_code
            == 403
        )
        assert (
            client.post(
                f"/api/v1/connections/{connection_id}/rotate-secret", headers=headers
            ).status_code
            == 403
        )
        assert client.get("/api/v1/connections", headers=headers).status_code == 200
    assert client.get("/api/v1/connections").status_code == 401


def test_tenant_isolation(client, db, org, make_org):
    other = make_org("other")
    mine = create(client, org, platform="shopify", shop_domain=domain()).get_json()
    theirs = create(client, other, platform="shopify", shop_domain=domain()).get_json()
    listed = client.get("/api/v1/connections", headers=org.headers).get_json()["connections"]
    assert [c["connection_id"] for c in listed] == [mine["connection_id"]]
    target = theirs["connection_id"]
    assert client.get(f"/api/v1/connections/{target}", headers=org.headers).status_code == 404
    assert client.delete(f"/api/v1/connections/{target}", headers=org.headers).status_code == 404
    assert (
        client.post(f"/api/v1/connections/{target}/rotate-secret", headers=org.headers).status_code
        == 404
    )
    assert (
        client.put(
            f"/api/v1/connections/{target}/credentials",
            headers=org.headers,
            json={"credentials": {"t": 1}},
        ).status_code
        == 404
    )
    assert (
        one(db, "SELECT status FROM app.connections WHERE connection_id = %s", uuid.UUID(target))[
            "status"
        ]
        == "active"
    )


def test_a_store_connected_to_another_org_is_409(client, org, make_org):
    shop = domain()
    assert create(client, org, platform="shopify", shop_domain=shop).status_code == 201
    response = create(client, make_org("second"), platform="shopify", shop_domain=shop)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "already_connected"


def test_reconnecting_the_same_store_reactivates_it(client, db, org):
    shop = domain()
    first = create(
        client, org, platform="shopify", shop_domain=shop, secret="first-secret-123"
    ).get_json()
    client.delete(f"/api/v1/connections/{first['connection_id']}", headers=org.headers)
    second = create(
        client, org, platform="shopify", shop_domain=shop, secret="second-secret-123"
    ).get_json()
    assert second["connection_id"] == first["connection_id"]
    assert second["status"] == "active"
    assert deliver_checkout(client, shop, "second-secret-123").status_code == 200
    assert deliver_checkout(client, shop, "first-secret-123").status_code == 401


def test_unknown_or_malformed_ids_are_404(client, org):
    for cid in (uuid.uuid4(), "not-a-uuid"):
        assert client.get(f"/api/v1/connections/{cid}", headers=org.headers).status_code == 404
        assert client.delete(f"/api/v1/connections/{cid}", headers=org.headers).status_code == 404
        assert (
            client.post(f"/api/v1/connections/{cid}/rotate-secret", headers=org.headers).status_code
            == 404
        )


def test_disconnect_cancels_pending_messages_and_refuses_webhooks(
    client, db, org, free_fixture_shop
):
    created = create(
        client, org, platform="shopify", shop_domain=free_fixture_shop, secret="disconnect-secret"
    ).get_json()
    deliver_checkout(client, free_fixture_shop, "disconnect-secret")
    cart_id = one(db, "SELECT cart_id FROM app.carts WHERE org_id = %s", org.org_id)["cart_id"]
    with db.system() as conn:
        campaign = conn.execute(
            "INSERT INTO app.campaigns (org_id, name) VALUES (%s, 'c') RETURNING campaign_id",
            (org.org_id,),
        ).fetchone()["campaign_id"]
        for step, status in enumerate(("scheduled", "enqueued", "sent")):
            conn.execute(
                "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, "
                "channel, due_at, status) VALUES (%s, %s, %s, %s, 'email', now(), %s)",
                (org.org_id, cart_id, campaign, step, status),
            )

    response = client.delete(f"/api/v1/connections/{created['connection_id']}", headers=org.headers)
    assert response.status_code == 200
    assert response.get_json() == {
        "connection_id": created["connection_id"],
        "status": "removed",
        "cancelled_messages": 2,
    }
    with db.system() as conn:
        outbox = conn.execute(
            "SELECT step_index, status, reason FROM app.outbox "
            "WHERE org_id = %s ORDER BY step_index",
            (org.org_id,),
        ).fetchall()
    assert outbox == [
        {"step_index": 0, "status": "cancelled", "reason": "store_disconnected"},
        {"step_index": 1, "status": "cancelled", "reason": "store_disconnected"},
        {"step_index": 2, "status": "sent", "reason": None},
    ]
    listed = client.get(
        f"/api/v1/connections/{created['connection_id']}", headers=org.headers
    ).get_json()
    assert (listed["status"], listed["status_reason"]) == ("removed", "store_disconnected")
    refused = deliver_checkout(client, free_fixture_shop, "disconnect-secret")
    assert refused.status_code == 404


def test_rotate_secret_keeps_the_old_one_for_the_grace_period(client, db, org):
    shop = domain()
    created = create(
        client, org, platform="shopify", shop_domain=shop, secret="old-secret-123"
    ).get_json()
    url = f"/api/v1/connections/{created['connection_id']}/rotate-secret"
    response = client.post(url, headers=org.headers)
    assert response.status_code == 200
    new = response.get_json()["secret"]
    assert new and new != "old-secret-123"
    assert response.get_json()["previous_secret_expires_at"]
    info = client.get(
        f"/api/v1/connections/{created['connection_id']}", headers=org.headers
    ).get_json()
    assert info["previous_secret_expires_at"] and info["secret_rotated_at"]

    assert deliver_checkout(client, shop, "old-secret-123").status_code == 200
    assert deliver_checkout(client, shop, new).status_code == 200
    with db.system() as conn:
        conn.execute(
            "UPDATE app.connections SET previous_secret_expires_at = "
            "now() - interval '1 minute' WHERE connection_id = %s",
            (uuid.UUID(created["connection_id"]),),
        )
    assert deliver_checkout(client, shop, "old-secret-123").status_code == 401
    assert deliver_checkout(client, shop, new).status_code == 200


def test_rotate_with_a_given_secret_and_no_grace(client, org):
    shop = domain()
    created = create(
        client, org, platform="shopify", shop_domain=shop, secret="old-secret-456"
    ).get_json()
    url = f"/api/v1/connections/{created['connection_id']}/rotate-secret"
    response = client.post(
        url, headers=org.headers, json={"secret": "chosen-secret-789", "grace_seconds": 0}
    )
    assert response.get_json()["secret"] == "chosen-secret-789"
    assert deliver_checkout(client, shop, "old-secret-456").status_code == 401
    assert deliver_checkout(client, shop, "chosen-secret-789").status_code == 200


@pytest.mark.parametrize(
    "body", [{"grace_seconds": -1}, {"grace_seconds": 10**9}, {"secret": "x"}, {"other": 1}, "nope"]
)
def test_bad_rotation_requests_are_400(client, db, org, body):
    created = create(
        client, org, platform="shopify", shop_domain=domain(), secret="keep-me-123"
    ).get_json()
    data = body if isinstance(body, str) else json.dumps(body)
    response = client.post(
        f"/api/v1/connections/{created['connection_id']}/rotate-secret",
        headers=org.headers,
        data=data,
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"
    assert (
        one(
            db,
            "SELECT secret_rotated_at FROM app.connections WHERE connection_id = %s",
            uuid.UUID(created["connection_id"]),
        )["secret_rotated_at"]
        is None
    )


def test_removed_connection_cannot_rotate(client, org):
    created = create(client, org, platform="shopify", shop_domain=domain()).get_json()
    client.delete(f"/api/v1/connections/{created['connection_id']}", headers=org.headers)
    response = client.post(
        f"/api/v1/connections/{created['connection_id']}/rotate-secret", headers=org.headers
    )
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "connection_inactive"


def test_connections_are_in_the_openapi_document(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    assert "post" in paths["/api/v1/connections"]
    assert "requestBody" in paths["/api/v1/connections/{id}/rotate-secret"]["post"]
    assert "/api/webhooks/custom/{connection_id}" in paths


def test_woocommerce_site_url_is_stored_as_the_key_its_webhooks_are_found_by(client, db, org):
    response = client.post(
        "/api/v1/connections",
        headers=org.headers,
        json={
            "platform": "woocommerce",
            "shop_domain": f"https://Shop-{org.org_id.hex}.Example.com/",
            "secret": "wc-secret",
        },
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["shop_domain"] == f"shop-{org.org_id.hex}.example.com"
