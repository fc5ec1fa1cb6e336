"""Coupons: the exact requests each store API receives, idempotency, local codes, failures,
redemption. The store APIs are the recorder; the HTTP client is the real ``requests``."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from psycopg.types.json import Jsonb
from shopify_standin import GRAPHQL, ShopifyStandIn

from cartrecovery import discounts, tenancy
from delivery import coupons
from delivery.coupons import CouponError, issue, mark_redeemed

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
STEP = {
    "channel": "email",
    "delay_seconds": 0,
    "subject": "s",
    "template": "cart_reminder_discount",
    "discount": {"type": "percentage", "value": 10, "expires_in_hours": 72},
}
CODE = re.compile(r"^SAVE-[A-HJ-NP-Z2-9]{10}$")


def _connect(db, runtime, org_id, platform, credentials):
    domain = f"s-{uuid.uuid4().hex[:8]}.example.com"
    return tenancy.add_connection(
        db, runtime.encryption_key, org_id, platform, domain, "webhook-secret", credentials
    )


def _message(db, org_id, platform="custom", connection_id=None, currency="USD"):
    with db.system() as conn:
        cart = conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, currency, total_price, "
            "line_items, connection_id) VALUES (%s, %s, %s, %s, 50, %s, %s) RETURNING *",
            (org_id, platform, uuid.uuid4().hex, currency, Jsonb([]), connection_id),
        ).fetchone()
    message = {
        "org_id": org_id,
        "message_id": uuid.uuid4(),
        "cart_id": cart["cart_id"],
        "channel": "email",
    }
    return message, cart


def _issue(db, runtime, message, cart, step=STEP):
    with db.tenant(message["org_id"]) as conn:
        return issue(conn, runtime, message, step, cart, now=NOW)


def _stored(db, org_id):
    with db.system() as conn:
        return conn.execute(
            "SELECT * FROM app.coupons WHERE org_id = %s ORDER BY created_at", (org_id,)
        ).fetchall()


def _json(request) -> dict:
    return json.loads(request["body"])


def test_shopify_discount_code_basic_create(db, runtime, org, recorder):
    standin = ShopifyStandIn(recorder, token="shpat_test")
    connection_id = _connect(
        db,
        runtime,
        org.org_id,
        "shopify",
        {"access_token": "shpat_test", "api_base_url": recorder.url},
    )
    message, cart = _message(db, org.org_id, "shopify", connection_id)

    coupon = _issue(db, runtime, message, cart)

    assert CODE.match(coupon["code"])
    [request] = recorder.requests
    assert request["path"] == GRAPHQL  # the pinned GraphQL Admin API version, one call
    assert request["headers"]["X-Shopify-Access-Token"] == "shpat_test"
    [call] = standin.graphql_calls("CreateRecoveryDiscount")
    assert "discountCodeBasicCreate(basicCodeDiscount: $discount)" in call["query"]
    assert call["variables"] == {
        "discount": {
            "title": coupon["code"],
            "code": coupon["code"],
            "startsAt": "2026-11-25T10:00:00+00:00",
            "endsAt": "2026-11-28T10:00:00+00:00",
            "usageLimit": 1,
            "appliesOncePerCustomer": True,
            "context": {"all": "ALL"},
            "customerGets": {"value": {"percentage": 0.1}, "items": {"all": True}},
        }
    }

    assert (coupon["platform"], coupon["type"], coupon["value"], coupon["currency"]) == (
        "shopify",
        "percentage",
        Decimal("10.00"),
        "USD",
    )
    assert coupon["platform_ids"] == {
        "discount_id": "gid://shopify/DiscountCodeNode/9001",
        "discount_legacy_id": "9001",
    }
    assert coupon["expires_at"] == NOW + timedelta(hours=72)
    assert coupon["message_id"] == message["message_id"]
    assert coupon["cart_id"] == cart["cart_id"]
    assert len(_stored(db, org.org_id)) == 1


def test_shopify_fixed_amount_and_free_shipping(db, runtime, org, recorder):
    standin = ShopifyStandIn(recorder, token="t")
    connection_id = _connect(
        db, runtime, org.org_id, "shopify", {"access_token": "t", "api_base_url": recorder.url}
    )
    message, cart = _message(db, org.org_id, "shopify", connection_id)
    step = {**STEP, "discount": {"type": "fixed_amount", "value": 5, "expires_in_hours": 24}}
    coupon = _issue(db, runtime, message, cart, step)
    [fixed] = standin.discounts
    assert fixed["customerGets"]["value"] == {
        "discountAmount": {"amount": "5.00", "appliesOnEachItem": False}
    }
    assert fixed["endsAt"] == "2026-11-26T10:00:00+00:00"
    assert (coupon["type"], coupon["value"]) == ("fixed_amount", Decimal("5.00"))

    message, cart = _message(db, org.org_id, "shopify", connection_id)
    step = {**STEP, "discount": {"type": "free_shipping", "expires_in_hours": 24}}
    _issue(db, runtime, message, cart, step)
    [call] = standin.graphql_calls("CreateRecoveryFreeShipping")
    assert "discountCodeFreeShippingCreate" in call["query"]
    assert call["variables"]["discount"]["destination"] == {"all": True}
    assert "customerGets" not in call["variables"]["discount"]


def test_woocommerce_coupon(db, runtime, org, recorder):
    connection_id = _connect(
        db,
        runtime,
        org.org_id,
        "woocommerce",
        {"consumer_key": "ck_test", "consumer_secret": "cs_test", "api_base_url": recorder.url},
    )
    recorder.respond("POST", "/wp-json/wc/v3/coupons", 201, {"id": 720, "code": "x"})
    message, cart = _message(db, org.org_id, "woocommerce", connection_id)

    coupon = _issue(db, runtime, message, cart)

    [request] = recorder.find("POST", "/wp-json/wc/v3/coupons")
    expected_auth = "Basic " + base64.b64encode(b"ck_test:cs_test").decode()
    assert request["headers"]["Authorization"] == expected_auth
    assert _json(request) == {
        "code": coupon["code"],
        "discount_type": "percent",
        "amount": "10.00",
        "individual_use": True,
        "usage_limit": 1,
        "usage_limit_per_user": 1,
        "date_expires_gmt": "2026-11-28T10:00:00",
        "description": "Single-use cart recovery code",
    }
    assert (coupon["platform"], coupon["platform_ids"]) == ("woocommerce", {"coupon_id": 720})


def test_bigcommerce_coupon(db, runtime, org, recorder):
    connection_id = _connect(
        db,
        runtime,
        org.org_id,
        "bigcommerce",
        {"access_token": "bc_token", "store_hash": "abc123", "api_base_url": recorder.url},
    )
    recorder.respond("POST", "/stores/abc123/v2/coupons", 201, {"id": 5})
    message, cart = _message(db, org.org_id, "bigcommerce", connection_id)
    step = {**STEP, "discount": {"type": "fixed_amount", "value": 7.5}}

    coupon = _issue(db, runtime, message, cart, step)

    [request] = recorder.find("POST", "/stores/abc123/v2/coupons")
    assert request["headers"]["X-Auth-Token"] == "bc_token"
    assert _json(request) == {
        "name": coupon["code"],
        "code": coupon["code"],
        "type": "per_total_discount",
        "amount": "7.50",
        "enabled": True,
        "applies_to": {"entity": "categories", "ids": [0]},
        "expires": "Sat, 28 Nov 2026 10:00:00 +0000",  # default lifetime: 72 h
        "max_uses": 1,
        "max_uses_per_customer": 1,
    }
    assert (coupon["platform"], coupon["platform_ids"]) == ("bigcommerce", {"coupon_id": 5})


def test_idempotent_per_message(db, runtime, org, recorder):
    connection_id = _connect(
        db,
        runtime,
        org.org_id,
        "woocommerce",
        {"consumer_key": "k", "consumer_secret": "s", "api_base_url": recorder.url},
    )
    recorder.respond("POST", "/wp-json/wc/v3/coupons", 201, {"id": 1})
    message, cart = _message(db, org.org_id, "woocommerce", connection_id)
    first = _issue(db, runtime, message, cart)
    again = _issue(db, runtime, message, cart)
    assert again["coupon_id"] == first["coupon_id"] and again["code"] == first["code"]
    assert len(recorder.find("POST", "/wp-json/wc/v3/coupons")) == 1
    other, _ = _message(db, org.org_id, "woocommerce", connection_id)
    third = _issue(db, runtime, {**other, "cart_id": cart["cart_id"]}, cart)
    assert third["code"] != first["code"]
    assert len(_stored(db, org.org_id)) == 2


def test_local_code_for_custom_stores_and_missing_credentials(db, runtime, org, recorder):
    message, cart = _message(db, org.org_id, "custom")
    local = _issue(db, runtime, message, cart)
    assert CODE.match(local["code"])
    assert (local["platform"], local["platform_ids"], local["connection_id"]) == ("local", {}, None)

    bare = _connect(db, runtime, org.org_id, "shopify", None)  # webhooks only, no API token
    message, cart = _message(db, org.org_id, "shopify", bare)
    second = _issue(db, runtime, message, cart)
    assert second["platform"] == "local" and second["connection_id"] == bare
    assert recorder.requests == []
    assert sorted(c["code"] for c in _stored(db, org.org_id)) == sorted(
        [local["code"], second["code"]]
    )


def test_no_discount_no_coupon(db, runtime, org, recorder):
    message, cart = _message(db, org.org_id)
    assert _issue(db, runtime, message, cart, {**STEP, "discount": None}) is None
    assert _issue(db, runtime, message, cart, {"channel": "email"}) is None
    assert _stored(db, org.org_id) == []


@pytest.mark.parametrize("status,retryable", [(500, True), (422, False), (401, False)])
def test_api_failure_raises_and_stores_nothing(db, runtime, org, recorder, status, retryable):
    connection_id = _connect(
        db,
        runtime,
        org.org_id,
        "woocommerce",
        {"consumer_key": "k", "consumer_secret": "s", "api_base_url": recorder.url},
    )
    recorder.respond("POST", "/wp-json/wc/v3/coupons", status, {"code": "nope"})
    message, cart = _message(db, org.org_id, "woocommerce", connection_id)
    with pytest.raises(CouponError) as err:
        _issue(db, runtime, message, cart)
    assert err.value.retryable is retryable
    assert _stored(db, org.org_id) == []


def test_unreachable_store_is_retryable(db, runtime, org):
    connection_id = _connect(
        db,
        runtime,
        org.org_id,
        "bigcommerce",
        {"access_token": "t", "store_hash": "h", "api_base_url": "http://127.0.0.1:9"},
    )
    message, cart = _message(db, org.org_id, "bigcommerce", connection_id)
    with pytest.raises(CouponError) as err:
        _issue(db, runtime, message, cart)
    assert err.value.retryable is True
    assert _stored(db, org.org_id) == []


def test_rate_limit_with_retry_after_is_waited_out(db, runtime, org, recorder):
    connection_id = _connect(
        db,
        runtime,
        org.org_id,
        "woocommerce",
        {"consumer_key": "k", "consumer_secret": "s", "api_base_url": recorder.url},
    )
    recorder.respond(
        "POST",
        "/wp-json/wc/v3/coupons",
        429,
        {"code": "slow_down"},
        {"Retry-After": "0", "Content-Type": "application/json"},
    )
    recorder.respond("POST", "/wp-json/wc/v3/coupons", 201, {"id": 9})
    message, cart = _message(db, org.org_id, "woocommerce", connection_id)
    coupon = _issue(db, runtime, message, cart)
    assert coupon["platform_ids"] == {"coupon_id": 9}
    assert len(recorder.find("POST", "/wp-json/wc/v3/coupons")) == 2


def test_shopify_refused_discount_stores_nothing(db, runtime, org, recorder):
    standin = ShopifyStandIn(recorder, token="t")
    standin.discount_errors = [
        {"field": ["basicCodeDiscount", "code"], "code": "TAKEN", "message": "must be unique"}
    ]
    connection_id = _connect(
        db, runtime, org.org_id, "shopify", {"access_token": "t", "api_base_url": recorder.url}
    )
    message, cart = _message(db, org.org_id, "shopify", connection_id)
    with pytest.raises(CouponError, match="must be unique"):
        _issue(db, runtime, message, cart)
    assert len(standin.discounts) == 1  # one mutation: nothing half-made to clean up
    assert _stored(db, org.org_id) == []


def test_mark_redeemed_case_insensitive_and_once(db, runtime, org, make_org):
    message, cart = _message(db, org.org_id)
    coupon = _issue(db, runtime, message, cart)
    order_id, later_order = uuid.uuid4(), uuid.uuid4()
    with db.tenant(org.org_id) as conn:
        marked = mark_redeemed(conn, org.org_id, [coupon["code"].lower(), "OTHER10"], order_id)
    assert marked == [coupon["code"]]
    with db.tenant(org.org_id) as conn:
        assert mark_redeemed(conn, org.org_id, [coupon["code"]], later_order) == []
        assert mark_redeemed(conn, org.org_id, [], later_order) == []
    [row] = _stored(db, org.org_id)
    assert row["redeemed_at"] is not None and row["order_id"] == order_id
    other = make_org("other")
    with db.tenant(other.org_id) as conn:  # another org's order cannot redeem it
        assert mark_redeemed(conn, other.org_id, [coupon["code"]], uuid.uuid4()) == []


def test_offer_shapes_and_preview_placeholder():
    assert discounts.offer_of({"discount": {"type": "percent", "value": "15"}}).type == "percentage"
    offer = discounts.offer_of({"discount": {"type": "fixed", "value": 5, "expires_in_days": 2}})
    assert (offer.type, offer.value, offer.lifetime) == (
        "fixed_amount",
        Decimal("5.00"),
        timedelta(days=2),
    )
    assert discounts.offer_of({"discount": {"type": "percentage", "value": 0}}) is None
    assert discounts.offer_of({"discount": {"type": "bogus", "value": 5}}) is None
    preview = discounts.preview_coupon(STEP, now=NOW)
    assert preview["code"] == "PREVIEW-CODE"
    assert preview["expires_at"] == NOW + timedelta(hours=72)
    assert discounts.preview_coupon({"channel": "email"}) is None
    assert len({coupons.new_code() for _ in range(200)}) == 200
