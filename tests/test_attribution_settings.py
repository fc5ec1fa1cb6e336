"""The attribution settings of PATCH /api/v1/settings: defaults, partial windows, refusals,
and the reporting currency that defaults to the currency of most of the org's orders."""

from __future__ import annotations

import pytest

from cartrecovery.org_settings import get_settings, reporting_currency


def test_attribution_defaults(client, org):
    got = client.get("/api/v1/settings", headers=org.headers).get_json()
    assert got["attribution_windows_seconds"] == {"email": 432000, "sms": 432000, "push": 86400}
    assert got["attribution_touch"] == "click"
    assert got["attribution_half_life_seconds"] == 86400
    assert got["reporting_currency"] is None  # no orders yet


def test_attribution_patch_keeps_unlisted_channels_and_resets(client, org):
    patched = client.patch(
        "/api/v1/settings",
        headers=org.headers,
        json={
            "attribution_windows_seconds": {"push": 3600},
            "attribution_touch": "open_or_click",
            "attribution_half_life_seconds": 7200,
            "reporting_currency": "EUR",
        },
    )
    assert patched.status_code == 200, patched.get_data(as_text=True)
    body = patched.get_json()
    assert body["attribution_windows_seconds"] == {"email": 432000, "sms": 432000, "push": 3600}
    assert body["attribution_touch"] == "open_or_click"
    assert body["attribution_half_life_seconds"] == 7200
    assert body["reporting_currency"] == "EUR"
    reset = client.patch(
        "/api/v1/settings",
        headers=org.headers,
        json={"attribution_windows_seconds": None, "attribution_touch": None},
    ).get_json()
    assert reset["attribution_windows_seconds"]["push"] == 86400
    assert reset["attribution_touch"] == "click"
    assert reset["attribution_half_life_seconds"] == 7200


@pytest.mark.parametrize(
    "body",
    [
        {"attribution_windows_seconds": {"email": 0}},
        {"attribution_windows_seconds": {"fax": 60}},
        {"attribution_windows_seconds": {"sms": "60"}},
        {"attribution_windows_seconds": {"push": 90 * 24 * 3600 + 1}},
        {"attribution_touch": "open"},
        {"attribution_half_life_seconds": 0},
        {"attribution_half_life_seconds": 1.5},
        {"reporting_currency": "eur"},
        {"reporting_currency": "EURO"},
    ],
)
def test_attribution_patch_refuses_bad_values(client, org, body):
    before = client.get("/api/v1/settings", headers=org.headers).get_json()
    response = client.patch("/api/v1/settings", headers=org.headers, json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"
    assert client.get("/api/v1/settings", headers=org.headers).get_json() == before


def test_reporting_currency_defaults_to_most_orders(db, org):
    with db.tenant(org.org_id) as conn:
        for number, currency in enumerate(["usd", "EUR", "USD", "GBP"]):
            conn.execute(
                "INSERT INTO app.orders (org_id, platform, external_id, total_price, currency)"
                " VALUES (%s, 'api', %s, 10, %s)",
                (org.org_id, f"o-{number}", currency),
            )
        # The setting stays null (its default); the resolved currency is the most common one.
        assert get_settings(conn, org.org_id)["reporting_currency"] is None
        assert reporting_currency(conn, org.org_id) == "USD"
        conn.execute('UPDATE app.orgs SET settings = settings || \'{"reporting_currency": "GBP"}\'')
        assert get_settings(conn, org.org_id)["reporting_currency"] == "GBP"
        assert reporting_currency(conn, org.org_id) == "GBP"
