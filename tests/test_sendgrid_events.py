"""SendGrid signed event webhook: signature checks, storage once, clicks and suppressions."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from conftest import fixture_bytes, fixture_headers, fixture_vectors
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cartrecovery.runtime import Runtime
from cartrecovery.settings import with_overrides
from delivery import jobs
from ingest.app import create_app
from ingest.webhooks import sendgrid as webhook

PATH = "/api/webhooks/sendgrid/events"
SIG = "X-Twilio-Email-Event-Webhook-Signature"
TS = "X-Twilio-Email-Event-Webhook-Timestamp"


class Signer:
    """A key pair like the one SendGrid generates: ECDSA P-256, public key base64 DER."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: str | None = None) -> dict:
        timestamp = timestamp or str(int(time.time()))
        signature = self.key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "Content-Type": "application/json",
            SIG: base64.b64encode(signature).decode(),
            TS: timestamp,
        }


@pytest.fixture()
def signer():
    return Signer()


@pytest.fixture()
def sg_settings(settings, signer):
    return with_overrides(settings, sendgrid_webhook_public_key=signer.public_key)


@pytest.fixture()
def sg_client(sg_settings):
    return create_app(sg_settings).test_client()


@pytest.fixture()
def message(db, org):
    """A sent message (outbox row) of a cart of ``org``."""
    with db.system() as conn:
        cart_id = conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, email, status, abandoned_at) "
            "VALUES (%s, 'custom', %s, 'jane@example.com', 'abandoned', now()) "
            "RETURNING cart_id",
            (org.org_id, uuid.uuid4().hex),
        ).fetchone()["cart_id"]
        campaign_id = conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status) VALUES (%s, 'c', 'active') "
            "RETURNING campaign_id",
            (org.org_id,),
        ).fetchone()["campaign_id"]
        message_id = conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
            "recipient, due_at, status, sent_at) VALUES (%s, %s, %s, 0, 'email', "
            "'jane@example.com', now(), 'sent', now()) RETURNING message_id",
            (org.org_id, cart_id, campaign_id),
        ).fetchone()["message_id"]
    return {
        "org_id": org.org_id,
        "cart_id": cart_id,
        "campaign_id": campaign_id,
        "message_id": message_id,
    }


def event(message, kind, **extra):
    base = {
        "email": "jane@example.com",
        "timestamp": 1773520040,
        "event": kind,
        "sg_event_id": f"{kind}-{uuid.uuid4().hex}",
        "sg_message_id": "abc.recvd-1",
        "category": ["cart_recovery", "step_1"],
        "message_id": str(message["message_id"]),
        "org_id": str(message["org_id"]),
        "cart_id": str(message["cart_id"]),
    }
    return base | extra


def stored(db, org_id):
    with db.system() as conn:
        return {
            "raw": conn.execute(
                "SELECT count(*) AS n FROM raw.events WHERE org_id = %s AND source = 'sendgrid'",
                (org_id,),
            ).fetchone()["n"],
            "events": conn.execute(
                "SELECT * FROM app.message_events WHERE org_id = %s ORDER BY event_type", (org_id,)
            ).fetchall(),
            "suppressions": conn.execute(
                "SELECT * FROM app.suppressions WHERE org_id = %s ORDER BY address", (org_id,)
            ).fetchall(),
        }


def test_fixture_vector_verifies(settings, monkeypatch):
    vectors = fixture_vectors()["sendgrid"]
    app = create_app(
        with_overrides(
            settings, sendgrid_webhook_public_key=vectors["verification_public_key_base64_der"]
        )
    )
    body = fixture_bytes("sendgrid_events.json")
    headers = fixture_headers("sendgrid", "sendgrid_events.json")
    monkeypatch.setattr(webhook, "TIMESTAMP_TOLERANCE_SECONDS", None)

    response = app.test_client().post(PATH, data=body, headers=headers)

    assert response.status_code == 200, response.get_json()
    # Real SendGrid events without our custom args belong to no org we know: ignored.
    assert response.get_json() == {"received": 9, "stored": 0, "duplicates": 0, "ignored": 9}

    tampered = body.replace(b"jane.doe", b"john.doe")
    assert app.test_client().post(PATH, data=tampered, headers=headers).status_code == 401


def test_fixture_vector_is_too_old_with_the_default_tolerance(settings):
    vectors = fixture_vectors()["sendgrid"]
    app = create_app(
        with_overrides(
            settings, sendgrid_webhook_public_key=vectors["verification_public_key_base64_der"]
        )
    )
    response = app.test_client().post(
        PATH,
        data=fixture_bytes("sendgrid_events.json"),
        headers=fixture_headers("sendgrid", "sendgrid_events.json"),
    )
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "stale_timestamp"


def test_events_are_stored_with_cart_and_suppress(db, sg_client, signer, message):
    org_id = message["org_id"]
    batch = [
        event(message, "delivered"),
        event(message, "click", url="https://shop.example.com/cart/restore/abc"),
        event(message, "unsubscribe", email="Jane@Example.com"),
        event(message, "bounce", email="blocked@example.com", type="blocked", reason="later"),
        event(message, "spamreport", email="spam@example.com"),
        {"email": "x@example.com", "event": "open", "sg_event_id": "no-args", "timestamp": 1},
        event(message, "open", message_id=str(uuid.uuid4())),  # unknown message
        event(message, "open", org_id=str(uuid.uuid4())),  # unknown org
        "not an object",
    ]
    body = json.dumps(batch).encode()

    response = sg_client.post(PATH, data=body, headers=signer.headers(body))

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"received": 9, "stored": 5, "duplicates": 0, "ignored": 4}
    seen = stored(db, org_id)
    assert seen["raw"] == 5
    by_type = {e["event_type"]: e for e in seen["events"]}
    assert set(by_type) == {"delivered", "click", "unsubscribe", "bounce", "spamreport"}
    click = by_type["click"]
    assert click["cart_id"] == message["cart_id"]
    assert click["message_id"] == message["message_id"]
    assert click["url"] == "https://shop.example.com/cart/restore/abc"
    assert click["event_key"] == batch[1]["sg_event_id"]
    assert click["occurred_at"].timestamp() == 1773520040
    assert by_type["delivered"]["url"] is None
    assert [(s["channel"], s["address"], s["reason"]) for s in seen["suppressions"]] == [
        ("email", "jane@example.com", "unsubscribe"),
        ("email", "spam@example.com", "spamreport"),
    ]

    # Redelivery (SendGrid retries a batch it thinks failed): nothing new.
    again = sg_client.post(PATH, data=body, headers=signer.headers(body))
    assert again.get_json() == {"received": 9, "stored": 0, "duplicates": 5, "ignored": 4}
    after = stored(db, org_id)
    assert after["raw"] == 5 and len(after["events"]) == 5 and len(after["suppressions"]) == 2


def test_unsubscribe_holds_the_next_message(db, settings, sg_client, signer, message):
    bounce = event(message, "bounce", type="bounce", reason="550 no such user")
    body = json.dumps([bounce]).encode()
    assert sg_client.post(PATH, data=body, headers=signer.headers(body)).status_code == 200

    with db.system() as conn:
        next_id = conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
            "recipient, due_at, status) VALUES (%s, %s, %s, 1, 'email', 'JANE@example.com', "
            "now(), 'enqueued') RETURNING message_id",
            (message["org_id"], message["cart_id"], message["campaign_id"]),
        ).fetchone()["message_id"]
    jobs.configure(Runtime(settings))
    try:
        assert jobs.send_message(str(message["org_id"]), str(next_id)) == "held"
    finally:
        jobs.configure(None)
    with db.system() as conn:
        row = conn.execute(
            "SELECT status, reason FROM app.outbox WHERE message_id = %s", (next_id,)
        ).fetchone()
    assert row == {"status": "held", "reason": "suppressed:bounce"}


@pytest.mark.parametrize("case", ["other_key", "tampered", "missing", "garbage", "stale"])
def test_bad_signature_is_rejected_and_nothing_stored(db, sg_client, signer, message, case):
    body = json.dumps([event(message, "click", url="https://x.example")]).encode()
    headers = signer.headers(body)
    if case == "other_key":
        headers = Signer().headers(body)
    elif case == "tampered":
        body = body.replace(b"https://x.example", b"https://y.example")
    elif case == "missing":
        headers.pop(SIG)
    elif case == "garbage":
        headers[SIG] = "not-base64!!"
    elif case == "stale":
        headers = signer.headers(body, timestamp=str(int(time.time()) - 3600))

    response = sg_client.post(PATH, data=body, headers=headers)

    assert response.status_code == 401
    assert set(response.get_json()["error"]) == {"code", "message", "details"}
    seen = stored(db, message["org_id"])
    assert seen["raw"] == 0 and seen["events"] == [] and seen["suppressions"] == []


def test_unconfigured_public_key_rejects(settings, signer):
    client = create_app(settings).test_client()
    body = b"[]"
    response = client.post(PATH, data=body, headers=signer.headers(body))
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "signature_not_configured"


@pytest.mark.parametrize("body", [b"{not json", b'{"event": "click"}', b'"x"'])
def test_malformed_bodies_are_400(sg_client, signer, body):
    response = sg_client.post(PATH, data=body, headers=signer.headers(body))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] in {"invalid_json", "invalid_body"}


def test_non_utf8_body_cannot_verify(sg_client, signer):
    body = b"\xff\xfe[]"
    response = sg_client.post(PATH, data=body, headers=signer.headers(body))
    assert response.status_code == 401


def test_batch_with_duplicate_ids_stores_once(db, sg_client, signer, message):
    one = event(message, "open")
    body = json.dumps([one, dict(one)]).encode()
    response = sg_client.post(PATH, data=body, headers=signer.headers(body))
    assert response.get_json() == {"received": 2, "stored": 1, "duplicates": 1, "ignored": 0}
    assert stored(db, message["org_id"])["raw"] == 1


def test_events_for_a_sent_message_find_their_cart(
    db, settings, sg_client, signer, message, recorder
):
    """Round trip: what the SendGrid provider sends is what the webhook routes by."""
    recorder.respond("POST", "/v3/mail/send", 202, b"", {"X-Message-Id": "sg-1"})
    with db.system() as conn:
        conn.execute(
            "UPDATE app.outbox SET status = 'enqueued', sent_at = NULL WHERE message_id = %s",
            (message["message_id"],),
        )
        # A message the gate lets through at any hour: consent given, quiet hours open.
        conn.execute(
            "INSERT INTO app.consents (org_id, channel, address, status, source) "
            "VALUES (%s, 'email', 'jane@example.com', 'granted', 'checkout')",
            (message["org_id"],),
        )
        conn.execute(
            "UPDATE app.orgs SET settings = settings || "
            '\'{"quiet_hours": {"start": "00:00", "end": "24:00"}}\' '
            "WHERE org_id = %s",
            (message["org_id"],),
        )
    jobs.configure(
        Runtime(with_overrides(settings, sendgrid_api_key="SG.k", sendgrid_base_url=recorder.url))
    )
    try:
        assert jobs.send_message(str(message["org_id"]), str(message["message_id"])) == "sent"
    finally:
        jobs.configure(None)
    sent = json.loads(recorder.find("POST", "/v3/mail/send")[0]["body"])
    click = {
        "email": "jane@example.com",
        "timestamp": int(time.time()),
        "event": "click",
        "url": "https://shop.example.com/r",
        "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": "sg-1.recvd-1",
        **sent["custom_args"],
    }
    body = json.dumps([click]).encode()

    response = sg_client.post(PATH, data=body, headers=signer.headers(body))

    assert response.get_json()["stored"] == 1
    events = stored(db, message["org_id"])["events"]
    assert [(e["event_type"], e["cart_id"], e["message_id"]) for e in events] == [
        ("click", message["cart_id"], message["message_id"])
    ]
