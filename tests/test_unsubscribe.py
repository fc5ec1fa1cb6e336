"""The unsubscribe link every email carries: GET asks, POST suppresses and records."""

from __future__ import annotations

import re
import uuid

import pytest

from cartrecovery.signed_links import make_token, unsubscribe_url


@pytest.fixture()
def sent_message(db, org):
    with db.system() as conn:
        cart_id = conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, email, status) "
            "VALUES (%s, 'api', %s, 'Jane@Example.com', 'abandoned') RETURNING cart_id",
            (org.org_id, uuid.uuid4().hex),
        ).fetchone()["cart_id"]
        campaign_id = conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status) VALUES (%s, 'c', 'active') "
            "RETURNING campaign_id",
            (org.org_id,),
        ).fetchone()["campaign_id"]
        message_id = conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
            "recipient, due_at, status) VALUES (%s, %s, %s, 0, 'email', 'Jane@Example.com', "
            "now(), 'sent') RETURNING message_id",
            (org.org_id, cart_id, campaign_id),
        ).fetchone()["message_id"]
    return {"org_id": org.org_id, "cart_id": cart_id, "message_id": message_id}


def _path(settings, message) -> str:
    url = unsubscribe_url(
        "http://testserver",
        settings.secret_key,
        message["org_id"],
        message["message_id"],
        message["cart_id"],
    )
    return url.replace("http://testserver", "")


def _suppressions(db, org_id):
    with db.system() as conn:
        return conn.execute(
            "SELECT channel, address, reason FROM app.suppressions WHERE org_id = %s", (org_id,)
        ).fetchall()


def test_get_asks_and_changes_nothing(client, db, settings, sent_message):
    page = client.get(_path(settings, sent_message))
    assert page.status_code == 200
    assert re.search(r'<form method="post"', page.get_data(as_text=True))
    assert _suppressions(db, sent_message["org_id"]) == []


def test_post_suppresses_the_address_and_records_the_withdrawal(client, db, settings, sent_message):
    path = _path(settings, sent_message)
    assert client.post(path).status_code == 200
    assert client.post(path).status_code == 200  # twice is the same as once
    assert _suppressions(db, sent_message["org_id"]) == [
        {"channel": "email", "address": "jane@example.com", "reason": "unsubscribe"}
    ]
    with db.system() as conn:
        consents = conn.execute(
            "SELECT channel, address, status, source FROM app.consents WHERE org_id = %s",
            (sent_message["org_id"],),
        ).fetchall()
        events = conn.execute(
            "SELECT event_type FROM app.message_events WHERE org_id = %s", (sent_message["org_id"],)
        ).fetchall()
    assert {(c["channel"], c["address"], c["status"], c["source"]) for c in consents} == {
        ("email", "jane@example.com", "withdrawn", "unsubscribe_link")
    }
    assert [e["event_type"] for e in events] == ["unsubscribe"]


def test_a_restore_token_cannot_unsubscribe(client, db, settings, sent_message):
    restore = make_token(
        settings.secret_key,
        sent_message["org_id"],
        sent_message["message_id"],
        sent_message["cart_id"],
    )
    response = client.post(f"/u/{restore}", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_link"
    assert _suppressions(db, sent_message["org_id"]) == []


def test_tampered_link_is_refused(client, db, settings, sent_message):
    path = _path(settings, sent_message)
    response = client.post(path[:-3] + "xyz", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert _suppressions(db, sent_message["org_id"]) == []
