"""The shopper's device class: classified from a browser's User-Agent at ingest (tracking
API and snippet, WooCommerce's ``customer_user_agent``), stored on the cart, and read by the
models' features (docs/models.md, "Features")."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import fixture_bytes
from test_snippet import ORIGIN, browser, pk  # noqa: F401  (pk: fixture)
from test_tracking_api import api_cart, cart_event, track
from test_woocommerce import cart_of, deliver, store, woo_client  # noqa: F401  (fixtures)

from cartrecovery.devices import device_class
from delivery import smart
from ml import training
from ml.features import FeatureSpace

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Mobile/15E148 Safari/604.1"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (IPHONE, "mobile"),
        (ANDROID_PHONE, "mobile"),
        (IPAD, "tablet"),
        (WINDOWS, "desktop"),
        ("python-requests/2.32.3", None),  # a store's server, not a shopper's browser
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", None),
        ("", None),
        (None, None),
        ("Mozilla/5.0 " + "x" * 2000, None),
    ],
)
def test_device_class_of_user_agents(user_agent, expected):
    assert device_class(user_agent) == expected


def _features_of(cart: dict) -> dict:
    """The cart's features as delivery scores it (smart.model_row -> FeatureSpace)."""
    row = smart.model_row(cart, "email", None, "UTC", 0.0)
    rows = {k: np.asarray([v]) for k, v in row.items()}
    rows["sent_at"] = rows["abandoned_at"] + 3600
    space = FeatureSpace.fit(training.simulated_log(customers=200, carts_per_customer=2, seed=1))
    return row, space.columns(rows)


def test_the_snippet_on_a_phone_makes_a_mobile_cart_and_feature(client, db, pk):  # noqa: F811
    response = client.post(
        "/api/v1/carts/track",
        json=cart_event("phone-1"),
        headers=browser(pk.publishable_key, ORIGIN, **{"User-Agent": IPHONE}),
    )
    assert response.status_code == 202, response.get_json()
    cart = api_cart(db, pk.org_id, "phone-1")
    assert cart["device"] == "mobile"
    row, columns = _features_of(cart)
    assert row["device"] == "mobile"
    assert columns["device_mobile"][0] == 1.0 and columns["device_desktop"][0] == 0.0


def test_a_server_call_keeps_the_device_the_browser_gave(client, db, org):
    assert track(client, org, cart_event("c-1"), {**org.headers, "User-Agent": IPAD}).status_code
    assert api_cart(db, org.org_id, "c-1")["device"] == "tablet"
    # The store's server updates the cart later: its HTTP client says nothing of the shopper.
    later = cart_event("c-1", at=_later())
    headers = {**org.headers, "User-Agent": "python-requests/2.32.3"}
    assert track(client, org, later, headers).status_code == 202
    cart = api_cart(db, org.org_id, "c-1")
    assert cart["device"] == "tablet"
    assert _features_of(cart)[1]["device_mobile"][0] == 0.0


def test_the_event_may_name_the_device_or_relay_the_browser_user_agent(client, db, org):
    server = {**org.headers, "User-Agent": "python-requests/2.32.3"}
    assert track(client, org, cart_event("named", device="desktop"), server).status_code == 202
    assert api_cart(db, org.org_id, "named")["device"] == "desktop"
    relayed = cart_event("relayed", user_agent=ANDROID_PHONE)
    assert track(client, org, relayed, server).status_code == 202
    assert api_cart(db, org.org_id, "relayed")["device"] == "mobile"
    batch = client.post(
        "/api/v1/events/batch",
        json={"events": [cart_event("b-1"), cart_event("b-2", device="tablet")]},
        headers={**org.headers, "User-Agent": WINDOWS},
    )
    assert batch.status_code == 202 and batch.get_json()["accepted"] == 2
    assert api_cart(db, org.org_id, "b-1")["device"] == "desktop"
    assert api_cart(db, org.org_id, "b-2")["device"] == "tablet"
    assert track(client, org, cart_event("none"), server).status_code == 202
    assert api_cart(db, org.org_id, "none")["device"] is None


def test_an_unknown_device_name_is_a_400(client, org):
    response = track(client, org, cart_event("bad", device="fridge"))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"


def test_a_woocommerce_order_user_agent_is_classified(woo_client, db, store):  # noqa: F811
    agent = json.loads(fixture_bytes("woocommerce_order_created.json"))["customer_user_agent"]
    assert "Macintosh" in agent
    response = deliver(woo_client)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert cart_of(db, store.org_id)["device"] == "desktop"


def _later():
    from test_tracking_api import T0

    return T0.replace(hour=T0.hour + 1)
