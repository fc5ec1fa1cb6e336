"""Adapters beyond the built-in platforms: a third-party adapter installed with pip (from
tests/example_adapter) and routed through /api/webhooks/custom/<connection_id>, and the
built-in generic adapter (our own signed JSON) for custom shops."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from cartrecovery import tenancy
from integrations import registry
from integrations.generic.adapter import sign

EXAMPLE = Path(__file__).parent / "example_adapter"


@pytest.fixture(scope="module")
def example_adapter(tmp_path_factory):
    """pip-install the example package (offline, into a folder of its own put on sys.path, so
    the shared venv is untouched), then forget it again."""
    work = tmp_path_factory.mktemp("example-adapter")
    source, target = work / "src", work / "site"
    shutil.copytree(EXAMPLE, source)  # setuptools builds in the tree: keep tests/ clean
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    sys.path.insert(0, str(target))
    registry.reload()
    yield
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m.startswith("cartrecovery_example_adapter")]:
        del sys.modules[name]
    registry.reload()


def create(client, org, platform: str, shop_domain: str, **extra) -> dict:
    response = client.post(
        "/api/v1/connections",
        headers=org.headers,
        json={"platform": platform, "shop_domain": shop_domain, **extra},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def one(db, sql: str, *params):
    with db.system() as conn:
        return conn.execute(sql, params).fetchone()


def count(db, table: str, org_id) -> int:
    return one(db, f"SELECT count(*) AS n FROM {table} WHERE org_id = %s", org_id)["n"]


# --- a third-party adapter ----------------------------------------------------------------


def basket(delivery_id: str = "d-1", **changes) -> bytes:
    body = {
        "delivery_id": delivery_id,
        "basket": {
            "id": "b-42",
            "email": "Sam@Example.com",
            "currency": "eur",
            "items": [{"sku": "MUG", "title": "Mug", "qty": 2, "price": "9.50"}],
            "updated_at": "2026-03-14T10:00:00Z",
        }
        | changes,
    }
    return json.dumps(body).encode()


def test_installed_package_registers_its_adapter(example_adapter):
    assert "example" in registry.adapters()
    assert registry.get_adapter("example").platform == "example"


def test_cli_connects_a_store_of_an_installed_package(example_adapter, client, db, org, settings):
    from click.testing import CliRunner

    from cli.main import main

    env = {
        "DATABASE_URL": settings.database_url,
        "APP_URL": settings.app_url,
        "SECRET_KEY": settings.secret_key,
        "ENCRYPTION_KEY": None,
    }
    args = ["connections", "add", "example", "--org", str(org.org_id), "--json"]
    args += ["--shop-domain", "cli-shop.example.net", "--secret", "example-secret-2"]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    custom = f"{settings.app_url}/api/webhooks/custom/{body['connection_id']}"
    assert body["webhook_urls"] == {"events": custom}
    headers = {"X-Example-Token": "example-secret-2", "Content-Type": "application/json"}
    response = client.post(custom.removeprefix(settings.app_url), data=basket(), headers=headers)
    assert response.status_code == 200, response.get_json()


def test_custom_route_delivers_through_the_installed_adapter(
    example_adapter, client, db, org, settings
):
    created = create(client, org, "example", "shop.example.net", secret="example-secret-1")
    connection_id = created["connection_id"]
    custom = f"{settings.app_url}/api/webhooks/custom/{connection_id}"
    assert created["webhook_urls"] == {"events": custom}
    assert created["custom_webhook_url"] == custom

    headers = {"X-Example-Token": "example-secret-1", "Content-Type": "application/json"}
    url = f"/api/webhooks/custom/{connection_id}"
    response = client.post(url, data=basket(), headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "ok"

    cart = one(db, "SELECT * FROM app.carts WHERE org_id = %s", org.org_id)
    assert (cart["platform"], cart["external_id"]) == ("example", "b-42")
    assert str(cart["connection_id"]) == connection_id
    assert (cart["email"], cart["currency"]) == ("sam@example.com", "EUR")
    assert (cart["item_count"], cart["total_price"]) == (2, Decimal("19.00"))
    event = one(db, "SELECT * FROM raw.events WHERE org_id = %s", org.org_id)
    assert (event["source"], event["topic"], event["cart_id"]) == (
        "example",
        "basket/updated",
        cart["cart_id"],
    )
    assert event["dedup_key"] == "example:d-1"

    # Redelivery is stored once; the platform route finds the store by its header too.
    assert client.post(url, data=basket(), headers=headers).get_json()["status"] == "duplicate"
    by_platform = client.post(
        "/api/webhooks/example",
        data=basket("d-2", items=[]),
        headers=headers | {"X-Example-Store": "shop.example.net"},
    )
    assert by_platform.status_code == 200
    assert (
        one(db, "SELECT item_count FROM app.carts WHERE org_id = %s", org.org_id)["item_count"] == 0
    )
    assert count(db, "raw.events", org.org_id) == 2


def test_custom_route_refuses_bad_requests_and_stores_nothing(example_adapter, client, db, org):
    connection_id = create(
        client, org, "example", "refusing.example.net", secret="example-secret-2"
    )["connection_id"]
    url = f"/api/webhooks/custom/{connection_id}"
    good = {"X-Example-Token": "example-secret-2"}
    cases = [
        (basket(), {"X-Example-Token": "wrong"}, 401),
        (basket(), {}, 401),
        (basket()[:-5], good, 400),
        (b"[1, 2]", good, 400),
        (json.dumps({"delivery_id": "x", "basket": {"items": "no"}}).encode(), good, 400),
    ]
    for body, headers, status in cases:
        response = client.post(url, data=body, headers=headers)
        assert response.status_code == status, (body, response.get_json())
        assert set(response.get_json()["error"]) == {"code", "message", "details"}
    assert count(db, "raw.events", org.org_id) == 0
    assert count(db, "app.carts", org.org_id) == 0


def test_unknown_connections_all_get_the_same_404(client, db, org):
    answers = [
        client.post(f"/api/webhooks/custom/{cid}", data=b"{}")
        for cid in (uuid.uuid4(), uuid.uuid4(), "not-a-uuid")
    ]
    assert {a.status_code for a in answers} == {404}
    assert answers[0].get_json() == answers[1].get_json() == answers[2].get_json()


def test_connection_of_an_uninstalled_adapter_is_404(example_adapter, client, db, org, runtime):
    connection_id = tenancy.add_connection(
        db, runtime.encryption_key, org.org_id, "gone-platform", "x.example", "s3cret-gone"
    )
    response = client.post(f"/api/webhooks/custom/{connection_id}", data=b"{}")
    assert response.status_code == 404


def test_unknown_platform_route_is_404(client):
    response = client.post("/api/webhooks/no-such-platform", data=b"{}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "unknown_platform"


# --- the generic adapter ------------------------------------------------------------------


def event(event_id: str = "e-1", kind: str = "checkout_started", **cart) -> bytes:
    cart_data = {
        "cart_id": "c-7",
        "email": "kim@example.com",
        "currency": "USD",
        "line_items": [{"sku": "TEE", "quantity": 1, "price": "25.00"}],
        "restore_url": "https://shop.example/cart/c-7",
    } | cart
    return json.dumps(
        {
            "event": kind,
            "event_id": event_id,
            "timestamp": "2026-03-14T10:00:00Z",
            "cart_data": cart_data,
        }
    ).encode()


@pytest.fixture()
def generic(client, org):
    created = create(client, org, "generic", f"{uuid.uuid4().hex[:8]}.custom-shop.example")
    org.connection_id = created["connection_id"]
    org.secret = created["secret"]
    org.url = f"/api/webhooks/custom/{created['connection_id']}"
    return org


def test_generic_connection_is_told_its_custom_url(client, generic, settings):
    assert generic.secret and len(generic.secret) >= 20  # generated, shown once
    listed = client.get(
        f"/api/v1/connections/{generic.connection_id}", headers=generic.headers
    ).get_json()
    assert listed["webhook_urls"] == {"events": settings.app_url + generic.url}
    assert generic.secret not in json.dumps(listed)


def test_generic_events_land_in_carts_and_orders(client, db, generic):
    body = event()
    response = client.post(generic.url, data=body, headers=sign(generic.secret, body))
    assert response.status_code == 200, response.get_json()
    cart = one(db, "SELECT * FROM app.carts WHERE org_id = %s", generic.org_id)
    assert (cart["platform"], cart["external_id"], cart["status"]) == ("generic", "c-7", "active")
    assert cart["restore_url"] == "https://shop.example/cart/c-7"
    assert str(cart["connection_id"]) == generic.connection_id

    order = event("e-2", "order_completed", order={"order_id": "o-1"})
    assert (
        client.post(generic.url, data=order, headers=sign(generic.secret, order)).status_code == 200
    )
    stored = one(db, "SELECT * FROM app.orders WHERE org_id = %s", generic.org_id)
    assert (stored["external_id"], stored["cart_id"], stored["total_price"]) == (
        "o-1",
        cart["cart_id"],
        Decimal("25.00"),
    )
    assert (
        one(db, "SELECT status FROM app.carts WHERE org_id = %s", generic.org_id)["status"]
        == "converted"
    )
    events = [
        r["topic"]
        for r in _rows(
            db,
            "SELECT topic FROM raw.events WHERE org_id = %s ORDER BY received_at",
            generic.org_id,
        )
    ]
    assert events == ["checkout_started", "order_completed"]
    # A replay within the tolerance is a duplicate (the event id).
    again = client.post(generic.url, data=body, headers=sign(generic.secret, body))
    assert again.get_json()["status"] == "duplicate"


def _rows(db, sql: str, *params):
    with db.system() as conn:
        return conn.execute(sql, params).fetchall()


def test_generic_refuses_bad_signatures_stale_timestamps_and_bad_bodies(client, db, generic):
    body = event()
    now = int(time.time())
    cases = [
        (body, sign("not-the-secret", body), 401),
        (body, {"X-Cartrecovery-Timestamp": str(now)}, 401),
        (body, sign(generic.secret, body, now - 3600), 401),  # a replay an hour later
        (body, sign(generic.secret, body, now + 3600), 401),
        (body, sign(generic.secret, body) | {"X-Cartrecovery-Timestamp": "soon"}, 401),
        (body, sign(generic.secret, body + b" "), 401),
        (body[:-10], sign(generic.secret, body[:-10]), 400),
        (b"null", sign(generic.secret, b"null"), 400),
    ]
    no_id = json.loads(body)
    del no_id["event_id"]
    no_id = json.dumps(no_id).encode()
    cases.append((no_id, sign(generic.secret, no_id), 400))
    bad_email = event(email="nope")
    cases.append((bad_email, sign(generic.secret, bad_email), 400))
    for data, headers, status in cases:
        response = client.post(generic.url, data=data, headers=headers)
        assert response.status_code == status, (headers, response.get_json())
    assert count(db, "raw.events", generic.org_id) == 0
    assert count(db, "app.carts", generic.org_id) == 0


def test_generic_secret_rotation_keeps_the_old_secret_for_the_grace_period(client, db, generic):
    rotated = client.post(
        f"/api/v1/connections/{generic.connection_id}/rotate-secret", headers=generic.headers
    )
    assert rotated.status_code == 200
    new = rotated.get_json()["secret"]
    for index, secret in enumerate((generic.secret, new)):
        body = event(f"r-{index}")
        assert client.post(generic.url, data=body, headers=sign(secret, body)).status_code == 200
    with db.system() as conn:
        conn.execute(
            "UPDATE app.connections SET previous_secret_expires_at = now() "
            "WHERE connection_id = %s",
            (generic.connection_id,),
        )
    body = event("r-late")
    assert (
        client.post(generic.url, data=body, headers=sign(generic.secret, body)).status_code == 401
    )
    assert client.post(generic.url, data=body, headers=sign(new, body)).status_code == 200


def test_removed_generic_connection_is_404(client, db, generic):
    assert (
        client.delete(
            f"/api/v1/connections/{generic.connection_id}", headers=generic.headers
        ).status_code
        == 200
    )
    body = event()
    response = client.post(generic.url, data=body, headers=sign(generic.secret, body))
    assert response.status_code == 404
    assert count(db, "raw.events", generic.org_id) == 0
