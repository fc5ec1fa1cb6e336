"""A campaign whose discount step would reach a store that refuses codes created only here
(a WooCommerce connection without REST keys, likewise Shopify/BigCommerce without a token) is
refused at creation and change with the reason, and nothing is written."""

from __future__ import annotations

import uuid

from cartrecovery import tenancy

STEP = {"channel": "email", "delay_seconds": 0, "subject": "Hi", "template": "cart_reminder"}
DISCOUNT_STEP = {
    **STEP,
    "template": "cart_reminder_discount",
    "discount": {"type": "percentage", "value": 10, "expires_in_hours": 72},
}


def connect(db, runtime, org, platform, credentials=None):
    return tenancy.add_connection(
        db,
        runtime.encryption_key,
        org.org_id,
        platform,
        f"{uuid.uuid4().hex[:8]}.shop.example",
        "webhook-secret",
        credentials,
    )


def create(client, org, steps, **fields):
    return client.post(
        "/api/v1/campaigns",
        json={"name": "winback", "sequence_steps": steps, **fields},
        headers=org.headers,
    )


def names(client, org):
    listed = client.get("/api/v1/campaigns", headers=org.headers).get_json()["campaigns"]
    return [c["name"] for c in listed]


def test_woocommerce_without_rest_keys_is_refused_with_the_reason(client, db, runtime, org):
    woo = connect(db, runtime, org, "woocommerce")
    refused = create(client, org, [STEP, DISCOUNT_STEP])
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert error["code"] == "discount_not_redeemable"
    assert "consumer_key" in error["message"] and str(woo) in error["message"]
    [problem] = error["details"]["connections"]
    assert problem["missing"] == ["consumer_key", "consumer_secret"]
    assert problem["steps"] == [1]
    assert names(client, org) == []

    # Without a discount, or kept away from that store, the campaign is fine.
    assert create(client, org, [STEP]).status_code == 201
    limited = create(client, org, [DISCOUNT_STEP], trigger_conditions={"platforms": ["shopify"]})
    assert limited.status_code == 201, limited.get_json()

    # With its keys the store creates the codes itself.
    keys = {"consumer_key": "ck_1", "consumer_secret": "cs_1"}
    assert (
        client.put(
            f"/api/v1/connections/{woo}/credentials",
            json={"credentials": keys},
            headers=org.headers,
        ).status_code
        == 200
    )
    assert create(client, org, [DISCOUNT_STEP]).status_code == 201


def test_a_change_that_adds_the_discount_is_refused_and_changes_nothing(client, db, runtime, org):
    connect(db, runtime, org, "woocommerce", {"consumer_key": "ck_only"})  # half the keys
    campaign = create(client, org, [STEP]).get_json()
    url = f"/api/v1/campaigns/{campaign['campaign_id']}"
    changed = client.patch(url, json={"sequence_steps": [DISCOUNT_STEP]}, headers=org.headers)
    assert changed.status_code == 400
    assert changed.get_json()["error"]["details"]["connections"][0]["missing"] == [
        "consumer_secret"
    ]
    assert client.get(url, headers=org.headers).get_json()["sequence_steps"] == [STEP]
    # Widening the conditions of a discount campaign is checked too.
    other = create(
        client, org, [DISCOUNT_STEP], trigger_conditions={"platforms": ["bigcommerce"]}
    ).get_json()
    widened = client.patch(
        f"/api/v1/campaigns/{other['campaign_id']}",
        json={"trigger_conditions": {}},
        headers=org.headers,
    )
    assert widened.status_code == 400


def test_stores_without_a_coupon_api_keep_local_codes(client, db, runtime, org):
    connect(db, runtime, org, "magento")
    connect(db, runtime, org, "generic")
    assert create(client, org, [DISCOUNT_STEP]).status_code == 201


def test_each_coupon_client_needs_exactly_the_credentials_its_platform_declares():
    # The refusal reads Platform.coupon_credentials; the coupon clients decide by themselves.
    from integrations import registry

    needed = registry.coupon_credentials()
    assert set(needed) == {"shopify", "woocommerce", "bigcommerce"}
    for name, keys in needed.items():
        client_for = registry.platform(name).coupon_client
        full = {key: "x" for key in keys}
        assert client_for("shop.example.com", full) is not None
        for key in keys:
            assert (
                client_for("shop.example.com", {k: v for k, v in full.items() if k != key}) is None
            )
