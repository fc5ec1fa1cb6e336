"""API key rotation and expiry: ``/api/v1/api-keys`` (admin) and migration 0016."""

from __future__ import annotations

import uuid

from cartrecovery import tenancy

TRACK = {
    "event": "cart_updated",
    "timestamp": "2026-01-01T00:00:00Z",
    "cart_data": {"cart_id": "k-1", "currency": "USD"},
}


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _expire(db, org_id, key_id) -> None:
    # Time passing, moved on the row rather than waited for.
    with db.system() as conn:
        conn.execute(
            "UPDATE app.api_keys SET expires_at = now() - interval '1 second' "
            "WHERE org_id = %s AND key_id = %s",
            (org_id, key_id),
        )


def test_create_with_expiry_and_it_stops_working(client, db, org):
    response = client.post(
        "/api/v1/api-keys",
        headers=org.headers,
        json={"role": "read", "name": "ci", "expires_in_seconds": 3600},
    )
    assert response.status_code == 201, response.get_json()
    made = response.get_json()
    assert made["role"] == "read" and made["expires_at"] and made["api_key"].startswith("cr_")
    assert client.get("/api/v1/carts", headers=_auth(made["api_key"])).status_code == 200
    _expire(db, org.org_id, made["key_id"])
    refused = client.get("/api/v1/carts", headers=_auth(made["api_key"]))
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "unauthorized"
    listed = client.get("/api/v1/api-keys", headers=org.headers).get_json()["api_keys"]
    assert made["key_id"] in {k["key_id"] for k in listed}
    assert all("api_key" not in k for k in listed)


def test_rotation_keeps_the_old_key_for_the_grace_period(client, db, org):
    key = tenancy.create_api_key(db, org.org_id, "write", name="store server")
    key_id = next(
        k["key_id"]
        for k in client.get("/api/v1/api-keys", headers=org.headers).get_json()["api_keys"]
        if k["name"] == "store server"
    )
    rotated = client.post(
        f"/api/v1/api-keys/{key_id}/rotate", headers=org.headers, json={"grace_seconds": 600}
    )
    assert rotated.status_code == 201, rotated.get_json()
    new = rotated.get_json()
    assert (new["role"], new["name"], new["replaces"]) == ("write", "store server", key_id)
    # Both work during the grace period, for the cached tracking path too.
    for credential in (key, new["api_key"]):
        track = client.post("/api/v1/carts/track", headers=_auth(credential), json=TRACK)
        assert track.status_code == 202, track.get_json()
    old = next(
        k
        for k in client.get("/api/v1/api-keys", headers=org.headers).get_json()["api_keys"]
        if k["key_id"] == key_id
    )
    assert old["expires_at"] is not None and old["revoked_at"] is None
    # The grace period ends: the old key is refused everywhere, the new one goes on.
    _expire(db, org.org_id, key_id)
    assert client.post("/api/v1/carts/track", headers=_auth(key), json=TRACK).status_code == 401
    assert client.get("/api/v1/carts", headers=_auth(key)).status_code == 401
    assert client.get("/api/v1/carts", headers=_auth(new["api_key"])).status_code == 200
    # An expired key cannot be rotated again.
    again = client.post(f"/api/v1/api-keys/{key_id}/rotate", headers=org.headers, json={})
    assert again.status_code == 404


def test_rotation_without_grace_stops_the_old_key_now(client, db, org):
    key = tenancy.create_api_key(db, org.org_id, "read")
    key_id = client.get("/api/v1/api-keys", headers=org.headers).get_json()["api_keys"][0]["key_id"]
    rotated = client.post(
        f"/api/v1/api-keys/{key_id}/rotate", headers=org.headers, json={"grace_seconds": 0}
    )
    assert rotated.status_code == 201
    assert client.get("/api/v1/carts", headers=_auth(key)).status_code == 401
    assert (
        client.get("/api/v1/carts", headers=_auth(rotated.get_json()["api_key"])).status_code == 200
    )


def test_revoke_and_who_may_manage_keys(client, db, org, make_org):
    key = tenancy.create_api_key(db, org.org_id, "read")
    key_id = client.get("/api/v1/api-keys", headers=org.headers).get_json()["api_keys"][0]["key_id"]
    # A read key may not manage keys; another org cannot see or touch this one.
    assert client.get("/api/v1/api-keys", headers=_auth(key)).status_code == 403
    other = make_org("other")
    assert key_id not in {
        k["key_id"]
        for k in client.get("/api/v1/api-keys", headers=other.headers).get_json()["api_keys"]
    }
    assert client.delete(f"/api/v1/api-keys/{key_id}", headers=other.headers).status_code == 404
    assert (
        client.post(f"/api/v1/api-keys/{key_id}/rotate", headers=other.headers, json={})
    ).status_code == 404
    assert client.get("/api/v1/carts", headers=_auth(key)).status_code == 200
    revoked = client.delete(f"/api/v1/api-keys/{key_id}", headers=org.headers)
    assert revoked.get_json() == {"key_id": key_id, "status": "revoked"}
    assert client.get("/api/v1/carts", headers=_auth(key)).status_code == 401
    assert client.delete(f"/api/v1/api-keys/{uuid.uuid4()}", headers=org.headers).status_code == 404
    assert client.delete("/api/v1/api-keys/not-a-uuid", headers=org.headers).status_code == 404
    bad = client.post("/api/v1/api-keys", headers=org.headers, json={"role": "publishable"})
    assert bad.status_code == 400
