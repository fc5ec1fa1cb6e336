"""The header view adapters read agrees with Werkzeug's EnvironHeaders."""

import pytest
from werkzeug.datastructures import EnvironHeaders
from werkzeug.test import EnvironBuilder

from integrations.headers import EnvironHeaderView

HEADERS = {
    "X-Shopify-Hmac-Sha256": "abc=",
    "webhook-id": "msg_1",
    "Content-Type": "application/json",
    "X-Empty": "",
    "X-Wc-Webhook-Delivery-ID": "42",
}


def environ(content_type="application/json"):
    env = EnvironBuilder(
        method="POST", path="/x", headers=HEADERS, data=b"{}", content_type=content_type
    ).get_environ()
    env["HTTP_CONTENT_TYPE"] = "duplicate"  # some servers add it; neither lists it
    return env


def test_reads_like_werkzeug_in_any_case():
    env = environ()
    view, werkzeug = EnvironHeaderView(env), EnvironHeaders(env)
    for name in (
        "x-shopify-hmac-sha256",
        "X-SHOPIFY-HMAC-SHA256",
        "Webhook-Id",
        "webhook-id",
        "content-type",
        "Content-Length",
        "x-empty",
        "X-WC-Webhook-Delivery-ID",
        "missing",
        "X-Missing-Too",
    ):
        assert view.get(name) == werkzeug.get(name), name
        assert (name in view) == (name in werkzeug), name
    assert view.get("missing", "fallback") == "fallback"
    assert dict(view.items()) == dict(werkzeug.items())
    assert len(view) == len(werkzeug)


def test_missing_header_is_a_key_error():
    view = EnvironHeaderView(environ())
    with pytest.raises(KeyError):
        view["X-Not-Sent"]
    assert 5 not in view  # not a name
