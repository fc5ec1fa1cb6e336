"""Per-process caches of connections and API keys never outlive a change: every cached
entry is confirmed against its row in the request's own transaction."""

import uuid

from conftest import fixture_bytes, fixture_headers, shopify_hmac

from cartrecovery import tenancy
from cartrecovery.crypto import encrypt

CHECKOUT = "shopify_checkouts_create.json"


def deliver(client, shop, secret, wid=None):
    body = fixture_bytes(CHECKOUT)
    headers = fixture_headers("shopify", CHECKOUT) | {
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": shopify_hmac(secret, body),
        "X-Shopify-Webhook-Id": wid or str(uuid.uuid4()),
    }
    return client.post("/api/webhooks/shopify/checkout-create", data=body, headers=headers)


def count(db, org_id):
    with db.system() as c:
        return c.execute("select count(*) n from raw.events where org_id=%s", (org_id,)).fetchone()[
            "n"
        ]


def setup(db, runtime, org):
    shop = f"s-{uuid.uuid4().hex[:8]}.myshopify.com"
    cid = tenancy.add_connection(
        db, runtime.encryption_key, org.org_id, "shopify", shop, "old-secret"
    )
    return shop, cid


def test_disconnect_elsewhere_is_refused_at_once(client, db, runtime, org):
    shop, cid = setup(db, runtime, org)
    assert deliver(client, shop, "old-secret").status_code == 200  # now cached
    with db.system() as c:  # another process: no cache invalidation here
        c.execute("UPDATE app.connections SET status='removed' WHERE connection_id=%s", (cid,))
    n = count(db, org.org_id)
    r = deliver(client, shop, "old-secret")
    assert r.status_code == 404, r.get_json()
    assert count(db, org.org_id) == n


def test_secret_replaced_elsewhere(client, db, runtime, org):
    shop, cid = setup(db, runtime, org)
    assert deliver(client, shop, "old-secret").status_code == 200
    with db.system() as c:
        c.execute(
            "UPDATE app.connections SET secret_ciphertext=%s WHERE connection_id=%s",
            (encrypt(runtime.encryption_key, "new-secret", str(org.org_id).encode()), cid),
        )
    n = count(db, org.org_id)
    assert deliver(client, shop, "old-secret").status_code == 401
    assert count(db, org.org_id) == n
    assert deliver(client, shop, "new-secret").status_code == 200
    assert count(db, org.org_id) == n + 1


def test_rotation_grace_ended_elsewhere(client, db, runtime, org):
    shop, cid = setup(db, runtime, org)
    tenancy.rotate_secret(db, runtime.encryption_key, org.org_id, cid, "new-secret")
    assert deliver(client, shop, "old-secret").status_code == 200  # grace: cached with both
    assert deliver(client, shop, "new-secret").status_code == 200
    with db.system() as c:
        c.execute(
            "UPDATE app.connections SET previous_secret_expires_at = now() - interval '1s' "
            "WHERE connection_id=%s",
            (cid,),
        )
    assert deliver(client, shop, "old-secret").status_code == 401
    assert deliver(client, shop, "new-secret").status_code == 200


def test_duplicate_and_dedup_still_once(client, db, runtime, org):
    shop, cid = setup(db, runtime, org)
    wid = str(uuid.uuid4())
    a = deliver(client, shop, "old-secret", wid)
    b = deliver(client, shop, "old-secret", wid)
    assert a.get_json()["status"] == "ok" and b.get_json() == {"status": "duplicate"}


EV = {
    "event": "cart_created",
    "timestamp": "2026-01-01T00:00:00Z",
    "cart_data": {"cart_id": "c1", "email": "A@B.io"},
}


def test_revoked_key_refused_at_once_on_tracking(client, db, org):
    assert (
        client.post("/api/v1/events/batch", headers=org.headers, json={"events": [EV]}).status_code
        == 202
    )  # key cached
    with db.tenant(org.org_id) as c:
        c.execute("UPDATE app.api_keys SET revoked_at = now()")
    n = count(db, org.org_id)
    r = client.post(
        "/api/v1/events/batch",
        headers=org.headers,
        json={"events": [dict(EV, event_id=str(uuid.uuid4()))]},
    )
    assert r.status_code == 401, r.get_json()
    assert count(db, org.org_id) == n
    r = client.post("/api/v1/events/batch", headers=org.headers, json={"events": [{"bad": 1}]})
    assert r.status_code == 401
    r = client.post("/api/v1/events/batch", headers=org.headers, json={"nope": 1})
    assert r.status_code == 401
    r = client.post("/api/v1/carts/track", headers=org.headers, json=dict(EV, event_id="x1"))
    assert r.status_code == 401
    assert count(db, org.org_id) == n


def test_batch_unicode_and_nul(client, org):
    r = client.post(
        "/api/v1/events/batch",
        headers=org.headers,
        json={
            "events": [
                dict(EV, event_id="n1", cart_data={"cart_id": "c\u0000"}),
                dict(EV, event_id="n2", cart_data={"cart_id": "é😀"}),
            ]
        },
    )
    body = r.get_json()
    assert [x["status"] for x in body["results"]] == ["rejected", "accepted"], body
