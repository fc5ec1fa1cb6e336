"""The OpenAPI document: valid OpenAPI 3.1, every route in the table of operations, and real
answers of every REST operation valid against the schemas it declares."""

from __future__ import annotations

import base64
import json
import os
import uuid

import pytest
from api_contract import ContractClient
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from openapi_spec_validator import validate
from psycopg.types.json import Jsonb

from ingest.openapi import build_document, routes
from ingest.schemas.operations import OPERATIONS
from integrations.generic.adapter import sign


@pytest.fixture()
def document(app):
    return build_document(app)


@pytest.fixture()
def api(app, client, document):
    return ContractClient(app, client, document)


def test_the_document_is_valid_openapi_3_1(client):
    doc = client.get("/api/openapi.json").get_json()
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema
    assert doc["openapi"] == "3.1.0"


def test_every_route_is_in_the_table_and_the_table_has_no_stale_entry(app):
    served = {(r.method, r.path) for r in routes(app)}
    assert served - set(OPERATIONS) == set(), "routes missing from ingest/schemas/operations.py"
    assert set(OPERATIONS) - served == set(), "table entries for routes the app does not serve"


def test_every_operation_declares_its_answers(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert any(c.startswith(("2", "3")) for c in codes), (method, path)
            for code, reply in operation["responses"].items():
                if code.startswith(("2",)) and code != "204" and path.startswith("/api/"):
                    assert "content" in reply, (method, path, code)
                if code.startswith("4") and path.startswith("/api/"):
                    schema = reply["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path)
            if OPERATIONS[(method.upper(), path)].auth in ("api_key", "api_or_publishable_key"):
                assert operation["security"] == [{"bearerAuth": []}]
                assert {"401", "403"} <= codes
            else:
                assert "security" not in operation  # webhooks: signatures, described in text
            if "requestBody" in operation or any(
                p["in"] == "query" for p in operation.get("parameters", [])
            ):
                assert "400" in codes, (method, path)


def test_no_auth_scheme_that_does_not_exist(document):
    schemes = document["components"]["securitySchemes"]
    assert list(schemes) == ["bearerAuth"]
    # Users' JWTs are described because they exist: the route that issues them is documented.
    assert "jwt" in json.dumps(schemes).lower()
    assert document["paths"]["/api/v1/auth/token"]["post"].get("security") in (None, [])


def test_query_parameters_are_never_null(document):
    for item in document["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                assert "null" not in json.dumps(parameter["schema"]), parameter


def _push_keys() -> dict:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    return {"p256dh": b64(point), "auth": b64(os.urandom(16))}


def _event(cart_id: str, **extra) -> dict:
    return {
        "event": "cart_updated",
        "timestamp": "2026-01-05T10:00:00Z",
        "cart_data": {
            "cart_id": cart_id,
            "email": "ana@example.com",
            "currency": "EUR",
            "line_items": [{"title": "Mug", "quantity": 2, "price": "12.50"}],
        },
        **extra,
    }


def test_answers_of_every_rest_operation_match_their_schemas(api, db, org):
    h = org.headers
    # service
    for path in ("/api/health", "/api/health/db", "/api/health/redis", "/api/health/queues"):
        assert api.get(path).status_code == 200
    assert api.get("/api/openapi.json").status_code == 200

    # settings
    assert api.get("/api/v1/settings", headers=h).status_code == 200
    patch = {"abandonment_timeout_seconds": 900, "quiet_hours": {"start": "09:00", "end": "20:00"}}
    assert api.patch("/api/v1/settings", headers=h, json=patch).status_code == 200

    # tracking and carts
    assert api.post("/api/v1/carts/track", headers=h, json=_event("c-1")).status_code == 202
    assert api.post("/api/v1/carts/track", headers=h, json=_event("c-1")).status_code == 202
    batch = {"events": [_event("c-2", event_id="e-2"), {"event": "nope"}]}
    assert api.post("/api/v1/events/batch", headers=h, json=batch).status_code == 202
    carts = api.get("/api/v1/carts?limit=5", headers=h).get_json()["carts"]
    assert api.get(f"/api/v1/carts/{carts[0]['cart_id']}", headers=h).status_code == 200
    assert api.get("/api/v1/analytics/dashboard?period=7d", headers=h).status_code == 200
    assert api.get(f"/api/v1/carts/{carts[0]['cart_id']}/timeline", headers=h).status_code == 200
    # The warehouse answers (exports need built marts: build the carts mart and its inputs).
    from pipelines.dbt_build import prepare_manifest, run_dbt_build

    prepare_manifest()
    run_dbt_build(api.app.extensions["cartrecovery"].settings.database_url, ["+fct_carts"])
    for path in (
        "/api/v1/analytics/attribution?model=linear&group_by=campaign&period=7d",
        "/api/v1/analytics/journeys?from=2026-01-01&to=2026-01-31&limit=5",
        "/api/v1/analytics/lift?period=90d",
        "/api/v1/analytics/smart?period=30d",
    ):
        assert api.get(path, headers=h).status_code == 200
    for fmt in ("csv", "xlsx", "parquet"):
        assert api.get(f"/api/v1/exports/carts.{fmt}", headers=h).status_code == 200

    # campaigns and preview
    step = {"channel": "email", "delay_seconds": 0, "subject": "Hi", "template": "cart_reminder"}
    push = {
        "channel": "push",
        "delay_seconds": 60,
        "subject": "Still there?",
        "template": "push_reminder",
    }
    discount = {"type": "percentage", "value": 10}
    body = {"name": "c", "sequence_steps": [{**step, "discount": discount}, push]}
    answer = api.post("/api/v1/campaigns", headers=h, json=body)
    assert answer.status_code == 201, answer.get_json()
    cid = answer.get_json()["campaign_id"]
    assert api.get("/api/v1/campaigns", headers=h).status_code == 200
    assert api.get(f"/api/v1/campaigns/{cid}", headers=h).status_code == 200
    assert api.patch(f"/api/v1/campaigns/{cid}", headers=h, json={"priority": 3}).status_code == 200
    performance = f"/api/v1/analytics/campaigns/{cid}/performance"
    assert api.get(performance, headers=h).status_code == 200
    for index in (0, 1):
        preview = api.post(f"/api/v1/campaigns/{cid}/preview", headers=h, json={"step": index})
        assert preview.status_code == 200
    assert api.delete(f"/api/v1/campaigns/{cid}", headers=h).status_code == 200

    # experiments: a step with two variants (no units yet) and a holdout
    ab = {**step, "variants": [{"name": "a"}, {"name": "b"}], "allocation": "thompson"}
    body = {"name": "ab", "sequence_steps": [ab], "experiment": {"holdout_percent": 10}}
    ab_id = api.post("/api/v1/campaigns", headers=h, json=body).get_json()["campaign_id"]
    for experiment in (f"{ab_id}:step:1", f"{ab_id}:holdout"):
        answer = api.get(f"/api/v1/experiments/{experiment}/results", headers=h)
        assert answer.status_code == 200, answer.get_json()
    assert api.patch(f"/api/v1/campaigns/{cid}", headers=h, json={"priority": 1}).status_code == 409

    # connections, and a signed webhook through the connection
    created = api.post(
        "/api/v1/connections",
        headers=h,
        json={"platform": "generic", "shop_domain": f"shop-{uuid.uuid4().hex[:6]}"},
    ).get_json()
    conn_id, secret = created["connection_id"], created["secret"]
    raw = json.dumps(_event("c-3", event_id="w-1")).encode()
    hook = f"/api/webhooks/custom/{conn_id}"
    headers = {**sign(secret, raw), "Content-Type": "application/json"}
    assert api.post(hook, data=raw, headers=headers).status_code == 200
    assert api.post(hook, data=raw, headers=headers).get_json()["status"] == "duplicate"
    assert api.post(hook, data=raw, headers={"Content-Type": "application/json"}).status_code == 401
    assert api.get("/api/v1/connections", headers=h).status_code == 200
    assert api.get(f"/api/v1/connections/{conn_id}", headers=h).status_code == 200
    creds = {"credentials": None}  # the generic platform takes no API credentials
    assert (
        api.put(f"/api/v1/connections/{conn_id}/credentials", headers=h, json=creds).status_code
        == 200
    )
    assert api.post(f"/api/v1/connections/{conn_id}/rotate-secret", headers=h).status_code == 200
    assert api.delete(f"/api/v1/connections/{conn_id}", headers=h).status_code == 200

    # consents
    consent = {
        "channel": "email",
        "address": "Ana@Example.com",
        "status": "granted",
        "source": "api",
    }
    assert api.post("/api/v1/consents", headers=h, json=consent).status_code == 201
    assert api.get("/api/v1/consents?channel=email", headers=h).status_code == 200

    # publishable keys and push subscriptions
    key = api.post(
        "/api/v1/publishable-keys", headers=h, json={"allowed_origins": ["https://shop.example"]}
    ).get_json()
    assert api.get("/api/v1/publishable-keys", headers=h).status_code == 200
    subscription = {
        "subscription": {"endpoint": "https://push.example.net/s/1", "keys": _push_keys()},
        "cart_id": "c-1",
    }
    pk = {"Authorization": f"Bearer {key['key']}"}
    assert api.post("/api/v1/push/subscriptions", headers=pk, json=subscription).status_code == 201
    assert api.post("/api/v1/push/subscriptions", headers=pk, json=subscription).status_code == 200
    assert api.delete(f"/api/v1/publishable-keys/{key['key_id']}", headers=h).status_code == 200

    # outgoing webhook subscriptions
    sub = api.post(
        "/api/v1/webhook-subscriptions",
        headers=h,
        json={"url": "https://hooks.example.com/in", "events": ["cart.abandoned"]},
    ).get_json()
    assert api.get("/api/v1/webhook-subscriptions", headers=h).status_code == 200
    gone = api.delete(f"/api/v1/webhook-subscriptions/{sub['subscription_id']}", headers=h)
    assert gone.status_code == 204

    # API keys: create with an expiry, list, rotate, revoke
    made = api.post(
        "/api/v1/api-keys", headers=h, json={"role": "read", "expires_in_seconds": 3600}
    ).get_json()
    assert api.get("/api/v1/api-keys", headers=h).status_code == 200
    rotated = api.post(
        f"/api/v1/api-keys/{made['key_id']}/rotate", headers=h, json={"grace_seconds": 0}
    ).get_json()
    assert api.delete(f"/api/v1/api-keys/{rotated['key_id']}", headers=h).status_code == 200

    # privacy
    with db.tenant(org.org_id) as conn:
        request_id = conn.execute(
            "INSERT INTO app.data_requests (org_id, platform, external_request_id, email, bundle) "
            "VALUES (%s, 'shopify', 'dr-1', 'ana@example.com', %s) RETURNING request_id",
            (org.org_id, Jsonb({"customers": []})),
        ).fetchone()["request_id"]
    assert api.get("/api/v1/privacy/data-requests", headers=h).status_code == 200
    assert api.get(f"/api/v1/privacy/data-requests/{request_id}", headers=h).status_code == 200
    assert api.get("/api/v1/privacy/export?email=ana@example.com", headers=h).status_code == 200
    assert api.get("/api/v1/privacy/export?email=nobody@example.com", headers=h).status_code == 200
    erasure = {"email": "ana@example.com"}
    assert api.post("/api/v1/privacy/erasure", headers=h, json=erasure).status_code == 200

    # a user's access token, then a read with it
    from cartrecovery import users

    email = f"contract-{uuid.uuid4().hex[:8]}@example.com"
    users.create_user(db, email, org.org_id, "viewer", "contract test password")
    token = api.post(
        "/api/v1/auth/token", json={"email": email, "password": "contract test password"}
    ).get_json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/campaigns", headers=bearer).status_code == 200

    # every REST operation was called, with a success answer validated against its schema
    rest = {(m, p) for (m, p) in OPERATIONS if p.startswith("/api/v1/")}
    succeeded = {(m, p) for (m, p, status) in api.checked if status < 300}
    succeeded |= {(m, p) for (m, p), op in OPERATIONS.items() if 204 in op.replies}
    assert rest - succeeded == set()


def test_error_answers_match_the_error_schema(api, org):
    h = org.headers
    assert api.get("/api/v1/carts").status_code == 401
    assert api.get("/api/v1/carts", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert api.get(f"/api/v1/campaigns/{uuid.uuid4()}", headers=h).status_code == 404
    assert api.get("/api/v1/carts?limit=0", headers=h).status_code == 400
    assert api.post("/api/v1/campaigns", headers=h, json={"name": ""}).status_code == 400
    assert api.post("/api/v1/events/batch", headers=h, json={"events": []}).status_code == 400
    assert api.post("/api/webhooks/nosuchplatform", json={}).status_code == 404
    assert api.get("/r/not-a-token", headers={"Accept": "application/json"}).status_code == 400
    assert api.get("/r/not-a-token", headers={"Accept": "text/html"}).status_code == 400


def test_a_missing_query_parameter_is_named(client, org):
    error = client.get("/api/v1/privacy/export", headers=org.headers).get_json()["error"]
    assert error["code"] == "validation_error"
    assert not error["message"].startswith("body")
    assert "Value error" not in error["message"]
    assert error["message"] == "query parameters email, phone: email or phone is required"

    error = client.get("/api/v1/carts?limit=x", headers=org.headers).get_json()["error"]
    assert error["message"].startswith("query parameter limit: ")
    assert error["details"]["errors"][0]["loc"] == ["limit"]


def test_request_examples_validate_and_succeed(api, document, org):
    from ingest.schemas.examples import REQUEST_EXAMPLES

    for (method, path), example in REQUEST_EXAMPLES.items():
        operation = document["paths"][path][method.lower()]
        media = operation["requestBody"]["content"]["application/json"]
        assert media["example"] == example
        api.validate(media["schema"], example)
        response = api.call(method, path, headers=org.headers, json=example)
        success = min(code for code in operation["responses"] if code.startswith("2"))
        assert response.status_code == int(success), (method, path, response.get_json())


def test_a_cart_with_messages_and_a_recovery_matches_its_schema(api, db, runtime, org):
    from delivery import scheduler

    h = org.headers
    step = {
        "channel": "email",
        "delay_seconds": 86400,
        "subject": "Hi",
        "template": "cart_reminder",
    }
    body = {"name": "later", "status": "active", "sequence_steps": [step]}
    assert api.post("/api/v1/campaigns", headers=h, json=body).status_code == 201
    cart_id = api.post("/api/v1/carts/track", headers=h, json=_event("m-1")).get_json()["cart_id"]
    with db.system() as conn:
        conn.execute(
            "UPDATE app.carts SET last_activity_at = now() - interval '1 day' WHERE org_id = %s",
            (org.org_id,),
        )
    try:
        scheduler.abandon_and_enroll(runtime)
        detail = api.get(f"/api/v1/carts/{cart_id}", headers=h).get_json()
        assert detail["status"] == "abandoned" and len(detail["messages"]) == 1
        order = _event("m-1", event="order_completed", event_id="o-1")
        order["cart_data"]["order"] = {"order_id": "A-1", "total_price": "25.00"}
        assert api.post("/api/v1/carts/track", headers=h, json=order).status_code == 202
        detail = api.get(f"/api/v1/carts/{cart_id}", headers=h).get_json()
        assert detail["order"]["external_id"] == "A-1"
        assert api.get("/api/v1/analytics/dashboard", headers=h).status_code == 200
    finally:
        with db.system() as conn:  # ticks are cross-org: leave nothing due for other tests
            conn.execute(
                "UPDATE app.outbox SET status = 'cancelled', reason = 'test ended' "
                "WHERE org_id = %s AND status IN ('scheduled', 'enqueued')",
                (org.org_id,),
            )


def test_links_point_at_operations_and_fields_that_exist(document):
    from ingest.openapi import _pointer

    operations = {
        _pointer(method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    schemas = document["components"]["schemas"]
    found = 0
    for item in document["paths"].values():
        for operation in item.values():
            for reply in operation["responses"].values():
                for link in reply.get("links", {}).values():
                    target = operations[link["operationRef"]]
                    names = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
                    assert set(link["parameters"]) == names
                    schema = schemas[_refs_name(reply)]
                    for expression in link["parameters"].values():
                        assert expression.rsplit("/", 1)[1] in schema["properties"]
                    found += 1
    assert found >= 10


def _refs_name(reply: dict) -> str:
    return reply["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
