"""``PUSH_ALLOW_LOCAL_ENDPOINTS`` is a real environment variable: read into the settings and
used by the Flask app, so web push can be tried against a local push service."""

from __future__ import annotations

import json

import pytest
from conftest import fixture_bytes

from cartrecovery.publishable_keys import create_publishable_key
from cartrecovery.settings import Settings, with_overrides
from ingest.app import create_app

LOCAL = "http://127.0.0.1:9/push/local"


def subscribe(settings, db, org):
    app = create_app(settings)
    key = create_publishable_key(db, org.org_id, ["https://shop.example.com"])
    subscription = json.loads(fixture_bytes("webpush_subscription.json")) | {"endpoint": LOCAL}
    return app.test_client().post(
        "/api/v1/push/subscriptions",
        json={"subscription": subscription},
        headers={"Authorization": f"Bearer {key}", "Origin": "https://shop.example.com"},
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), ("", False), ("true", True), ("1", True), ("ON", True), ("false", False)],
)
def test_read_from_the_environment(monkeypatch, value, expected):
    monkeypatch.delenv("PUSH_ALLOW_LOCAL_ENDPOINTS", raising=False)
    if value is not None:
        monkeypatch.setenv("PUSH_ALLOW_LOCAL_ENDPOINTS", value)
    assert Settings.from_env().push_allow_local_endpoints is expected


def test_a_value_that_is_neither_yes_nor_no_is_refused(monkeypatch):
    monkeypatch.setenv("PUSH_ALLOW_LOCAL_ENDPOINTS", "sometimes")
    with pytest.raises(ValueError, match="PUSH_ALLOW_LOCAL_ENDPOINTS must be one of"):
        Settings.from_env()


def test_the_app_follows_the_setting(settings, db, org):
    refused = subscribe(settings, db, org)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "invalid_endpoint"
    allowed = subscribe(with_overrides(settings, push_allow_local_endpoints=True), db, org)
    assert allowed.status_code == 201, allowed.get_json()
