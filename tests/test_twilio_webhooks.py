"""Twilio callbacks: signatures, delivery statuses that never go backwards, and inbound
keywords (STOP → HELP → START) with their suppressions, ledger entries and TwiML replies.

The fixtures' own signature vectors check the validator; requests through the app are signed
here (with the fixture's auth token) over the URL the app is reached at. Each inbound test
uses a phone number of its own, since inbound SMS are routed across orgs by phone number.
"""

from __future__ import annotations

import itertools
import uuid
from html import escape
from urllib.parse import parse_qsl, urlencode

import pytest
from conftest import fixture_bytes, fixture_headers, fixture_vectors
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from cartrecovery.org_settings import DEFAULT_SMS_HELP_TEXT, update_settings
from cartrecovery.settings import with_overrides
from ingest.app import create_app
from ingest.webhooks.twilio import verify_signature

TOKEN = fixture_vectors()["twilio"]["auth_token"]
SHARED_NUMBER = "+15035559876"
SERVICE_SID = "MGbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
MESSAGE_SID = "SMcccccccccccccccccccccccccccccccc"
STATUS = "/api/webhooks/twilio/status"
INBOUND = "/api/webhooks/twilio/inbound"
_numbers = itertools.count(2000)


def new_phone() -> str:
    return f"+1503555{next(_numbers):04d}"


def form(name: str, **changes) -> bytes:
    """A fixture body with some parameters changed (None removes one)."""
    params = dict(parse_qsl(fixture_bytes(name).decode(), keep_blank_values=True))
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return urlencode(params).encode()


def sign(url: str, body: bytes, token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(
        url, dict(parse_qsl(body.decode(), keep_blank_values=True))
    )


@pytest.fixture()
def twilio_client(settings):
    app = create_app(
        with_overrides(settings, twilio_auth_token=TOKEN, twilio_messaging_service_sid=SERVICE_SID)
    )
    app.config.update(TESTING=True)
    return app.test_client()


def post(
    client,
    path: str,
    body: bytes,
    *,
    signed_url: str | None = None,
    signature: str | None = None,
    headers: dict | None = None,
):
    url = signed_url or f"http://testserver{path}"
    all_headers = {"X-Twilio-Signature": signature or sign(url, body)} | (headers or {})
    return client.post(
        path, data=body, headers=all_headers, content_type="application/x-www-form-urlencoded"
    )


def make_sms(db, org_id, phone: str, *, sid: str | None = None) -> dict:
    """An SMS the org sent to ``phone`` (Twilio SID ``sid``)."""
    with db.tenant(org_id) as conn:
        cart = conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, phone, status, "
            "abandoned_at) VALUES (%s, 'custom', %s, %s, 'abandoned', now()) RETURNING cart_id",
            (org_id, uuid.uuid4().hex, phone),
        ).fetchone()
        campaign = conn.execute(
            "INSERT INTO app.campaigns (org_id, name) VALUES (%s, 'c') RETURNING campaign_id",
            (org_id,),
        ).fetchone()
        return conn.execute(
            """
            INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel,
                                    recipient, due_at, status, provider, provider_message_id,
                                    sent_at)
            VALUES (%s, %s, %s, 0, 'sms', %s, now(), 'sent', 'twilio', %s, now())
            RETURNING *
            """,
            (org_id, cart["cart_id"], campaign["campaign_id"], phone, sid),
        ).fetchone()


def query(db, org_id, sql: str, *args) -> list[dict]:
    with db.tenant(org_id) as conn:
        return conn.execute(sql, (org_id, *args)).fetchall()


def raw_events(db, org_id) -> list[dict]:
    return query(
        db,
        org_id,
        "SELECT topic, dedup_key FROM raw.events "
        "WHERE org_id = %s AND source = 'twilio' ORDER BY received_at",
    )


def message_state(db, org_id, message_id) -> dict:
    [row] = query(
        db,
        org_id,
        "SELECT delivery_status, delivery_error_code FROM app.outbox "
        "WHERE org_id = %s AND message_id = %s",
        message_id,
    )
    return row


def message_events(db, org_id) -> list[tuple]:
    rows = query(
        db,
        org_id,
        "SELECT event_key, event_type FROM app.message_events WHERE org_id = %s ORDER BY event_key",
    )
    return [(r["event_key"], r["event_type"]) for r in rows]


def suppressions(db, org_id, phone: str) -> list[str]:
    return [
        r["reason"]
        for r in query(
            db,
            org_id,
            "SELECT reason FROM app.suppressions WHERE org_id = %s "
            "AND channel = 'sms' AND address = %s",
            phone,
        )
    ]


def consents(db, org_id, phone: str) -> list[tuple]:
    rows = query(
        db,
        org_id,
        "SELECT status, source FROM app.consents WHERE org_id = %s "
        "AND channel = 'sms' AND address = %s ORDER BY recorded_at",
        phone,
    )
    return [(r["status"], r["source"]) for r in rows]


def reply(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    return response.get_data(as_text=True)


# --- signatures --------------------------------------------------------------------------


def test_fixture_signature_vectors_verify():
    vectors = fixture_vectors()["twilio"]
    for name, delivery in vectors["deliveries"].items():
        params = MultiDict(parse_qsl(fixture_bytes(name).decode(), keep_blank_values=True))
        signature = fixture_headers("twilio", name)["X-Twilio-Signature"]
        url = delivery["url"]
        assert verify_signature(TOKEN, [url], params, signature), name
        # Twilio may sign with the default port spelled out.
        with_port = url.replace(".com/", ".com:443/", 1)
        assert verify_signature(TOKEN, [with_port], params, signature), name
        assert not verify_signature("wrong-token", [url], params, signature), name
        assert not verify_signature(TOKEN, [url.replace("https", "http", 1)], params, signature), (
            name
        )
        tampered = params.copy()
        tampered["To"] = "+15035550000"
        assert not verify_signature(TOKEN, [url], tampered, signature), name
        extra = params.copy()
        extra["Injected"] = "1"  # every posted parameter is signed, known or not
        assert not verify_signature(TOKEN, [url], extra, signature), name
    example = vectors["json_body_example"]
    assert verify_signature(
        TOKEN, [example["url"]], example["raw_body"], example["X-Twilio-Signature"]
    )
    assert not verify_signature(
        TOKEN, [example["url"]], example["raw_body"] + " ", example["X-Twilio-Signature"]
    )


def test_wrong_or_missing_signatures_are_rejected(db, org, twilio_client):
    sms = make_sms(db, org.org_id, new_phone(), sid=MESSAGE_SID + "1")
    body = form("twilio_status_callback.txt", MessageSid=sms["provider_message_id"])
    path = f"{STATUS}?org_id={org.org_id}&message_id={sms['message_id']}"
    url = f"http://testserver{path}"
    cases = {
        "wrong token": (sign(url, body, "not-the-token"), 403),
        "other url": (sign(f"http://testserver{STATUS}?org_id={uuid.uuid4()}", body), 403),
        "other body": (sign(url, body.replace(b"delivered", b"undelivered")), 403),
        "garbage": ("bm90IGEgc2lnbmF0dXJl", 403),
    }
    for case, (signature, status) in cases.items():
        response = post(twilio_client, path, body, signature=signature)
        assert response.status_code == status, case
        assert response.get_json()["error"]["code"] == "invalid_signature"
    response = twilio_client.post(path, data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "missing_signature"
    # Inbound too: a forged STOP must not unsubscribe anyone.
    phone = new_phone()
    make_sms(db, org.org_id, phone)
    stop = form("twilio_inbound_stop.txt", From=phone)
    forged = post(twilio_client, INBOUND, stop, signature=sign(INBOUND, stop, "guess"))
    assert forged.status_code == 403
    assert raw_events(db, org.org_id) == []
    assert message_state(db, org.org_id, sms["message_id"])["delivery_status"] is None
    assert suppressions(db, org.org_id, phone) == []


def test_callbacks_refused_without_an_auth_token(client):
    body = fixture_bytes("twilio_status_callback.txt")
    response = post(client, STATUS, body)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "signature_not_configured"


def test_url_rebuilt_behind_a_proxy(db, org, twilio_client):
    sms = make_sms(db, org.org_id, new_phone(), sid=MESSAGE_SID + "2")
    body = form(
        "twilio_status_callback.txt",
        MessageSid=sms["provider_message_id"],
        MessageStatus="sent",
        SmsStatus="sent",
    )
    public = f"https://hooks.example.com{STATUS}"
    proxied = post(
        twilio_client,
        STATUS,
        body,
        signed_url=public,
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.com"},
    )
    assert proxied.status_code == 200, proxied.get_json()
    assert proxied.get_json() == {"stored": True, "duplicate": False, "delivery_status": "sent"}
    # Without the forwarded headers, that URL is not the one the app can see.
    body = form("twilio_status_callback.txt", MessageSid=sms["provider_message_id"])
    assert post(twilio_client, STATUS, body, signed_url=public).status_code == 403
    # The URL as the app itself was called works too.
    direct = post(twilio_client, STATUS, body, signed_url=f"http://localhost{STATUS}")
    assert direct.status_code == 200


def test_bad_callbacks_are_4xx(twilio_client):
    body = form("twilio_status_callback.txt", MessageSid=None, SmsSid=None)
    response = post(twilio_client, STATUS, body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_callback"
    body = form("twilio_inbound_stop.txt", From=None)
    assert post(twilio_client, INBOUND, body).status_code == 400
    response = twilio_client.post(
        STATUS,
        data=b'{"a": 1}',
        content_type="application/json",
        headers={"X-Twilio-Signature": "x"},
    )
    assert response.status_code == 415


# --- status callbacks --------------------------------------------------------------------


def test_delivered_callback_is_recorded_once(db, org, twilio_client):
    sms = make_sms(db, org.org_id, new_phone(), sid=MESSAGE_SID)
    body = form("twilio_status_callback.txt")
    path = f"{STATUS}?org_id={org.org_id}&message_id={sms['message_id']}"
    first = post(twilio_client, path, body)
    assert first.status_code == 200
    assert first.get_json() == {"stored": True, "duplicate": False, "delivery_status": "delivered"}
    again = post(twilio_client, path, body)
    assert again.get_json() == {"stored": False, "duplicate": True, "delivery_status": "delivered"}
    assert message_state(db, org.org_id, sms["message_id"]) == {
        "delivery_status": "delivered",
        "delivery_error_code": None,
    }
    assert message_events(db, org.org_id) == [(f"{MESSAGE_SID}:delivered", "delivered")]
    assert raw_events(db, org.org_id) == [
        {"topic": "status.delivered", "dedup_key": f"twilio:{MESSAGE_SID}:delivered"}
    ]


def test_status_never_moves_backwards(db, org, twilio_client):
    sid = "SM" + uuid.uuid4().hex
    sms = make_sms(db, org.org_id, new_phone(), sid=sid)
    path = f"{STATUS}?org_id={org.org_id}&message_id={sms['message_id']}"
    seen = []
    for status in ("queued", "delivered", "sent", "sending", "undelivered"):
        body = form(
            "twilio_status_callback.txt",
            MessageSid=sid,
            SmsSid=sid,
            MessageStatus=status,
            SmsStatus=status,
        )
        response = post(twilio_client, path, body)
        seen.append(response.get_json()["delivery_status"])
    assert seen == ["queued", "delivered", "delivered", "delivered", "delivered"]
    assert message_state(db, org.org_id, sms["message_id"])["delivery_status"] == "delivered"
    # Every callback is still an event that happened (queued/sending are not message events).
    assert message_events(db, org.org_id) == [
        (f"{sid}:delivered", "delivered"),
        (f"{sid}:sent", "sent"),
        (f"{sid}:undelivered", "undelivered"),
    ]
    assert len(raw_events(db, org.org_id)) == 5


def test_undelivered_keeps_its_error_and_dead_numbers_are_suppressed(db, org, twilio_client):
    phone = new_phone()
    sms = make_sms(db, org.org_id, phone, sid=MESSAGE_SID)
    path = f"{STATUS}?org_id={org.org_id}&message_id={sms['message_id']}"
    response = post(twilio_client, path, form("twilio_status_callback_undelivered.txt"))
    assert response.get_json()["delivery_status"] == "undelivered"
    assert message_state(db, org.org_id, sms["message_id"]) == {
        "delivery_status": "undelivered",
        "delivery_error_code": "30003",
    }
    assert suppressions(db, org.org_id, phone) == []  # 30003: unreachable for now
    other = make_sms(db, org.org_id, phone, sid="SM" + uuid.uuid4().hex)
    body = form(
        "twilio_status_callback_undelivered.txt",
        ErrorCode="30005",
        MessageSid=other["provider_message_id"],
        SmsSid=other["provider_message_id"],
    )
    post(twilio_client, f"{STATUS}?org_id={org.org_id}&message_id={other['message_id']}", body)
    assert suppressions(db, org.org_id, phone) == ["invalid_number"]


def test_callback_without_our_ids_is_found_by_sid(db, org, make_org, twilio_client):
    make_org("bystander")
    sid = "SM" + uuid.uuid4().hex
    sms = make_sms(db, org.org_id, new_phone(), sid=sid)
    body = form("twilio_status_callback.txt", MessageSid=sid, SmsSid=sid)
    assert post(twilio_client, STATUS, body).get_json()["stored"] is True
    assert message_state(db, org.org_id, sms["message_id"])["delivery_status"] == "delivered"
    unknown = form("twilio_status_callback.txt", MessageSid="SMunknown", SmsSid="SMunknown")
    response = post(twilio_client, STATUS, unknown)
    assert response.status_code == 200
    assert response.get_json()["ignored"] == "unknown_message"


# --- inbound keywords --------------------------------------------------------------------


def inbound(name: str, phone: str, **changes) -> bytes:
    sid = "SM" + uuid.uuid4().hex
    return form(name, From=phone, MessageSid=sid, SmsSid=sid, SmsMessageSid=sid, **changes)


def test_stop_help_start_sequence(db, org, twilio_client):
    phone = new_phone()
    with db.system() as conn:
        conn.execute(
            "UPDATE app.orgs SET name = 'Example Outfitters' WHERE org_id = %s", (org.org_id,)
        )
        update_settings(
            conn,
            org.org_id,
            {"sms_help_text": "{store}: help at support@example.com. Msg&data rates may apply."},
        )
    make_sms(db, org.org_id, phone)
    stop = inbound("twilio_inbound_stop.txt", phone)

    text = reply(post(twilio_client, INBOUND, stop))
    assert text == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
        "Example Outfitters: You are unsubscribed and will receive no further "
        "messages. Reply START to resubscribe.</Message></Response>"
    )
    assert suppressions(db, org.org_id, phone) == ["stop"]
    assert consents(db, org.org_id, phone) == [("withdrawn", "sms_keyword")]

    help_body = inbound("twilio_inbound_stop.txt", phone, Body="help", OptOutType=None)
    text = reply(post(twilio_client, INBOUND, help_body))
    assert (
        "<Message>Example Outfitters: help at support@example.com. Msg&amp;data rates "
        "may apply.</Message>" in text
    )
    assert suppressions(db, org.org_id, phone) == ["stop"]  # HELP changes nothing

    start = inbound("twilio_inbound_start.txt", phone)
    text = reply(post(twilio_client, INBOUND, start))
    assert "<Message>Example Outfitters: You are resubscribed" in text
    assert suppressions(db, org.org_id, phone) == []
    assert consents(db, org.org_id, phone) == [
        ("withdrawn", "sms_keyword"),
        ("granted", "sms_keyword"),
    ]

    # Twilio redelivering the old STOP must not undo the later START.
    reply(post(twilio_client, INBOUND, stop))
    assert suppressions(db, org.org_id, phone) == []
    assert [e["topic"] for e in raw_events(db, org.org_id)] == [
        "inbound.opt_out",
        "inbound.help",
        "inbound.opt_in",
    ]


@pytest.mark.parametrize(
    "word", ["stop", " Unsubscribe ", "CANCEL", "end", "Quit", "stopall", "REVOKE", "optout"]
)
def test_every_opt_out_keyword_suppresses(db, org, twilio_client, word):
    phone = new_phone()
    make_sms(db, org.org_id, phone)
    body = inbound("twilio_inbound_stop.txt", phone, Body=word, OptOutType=None)
    assert "unsubscribed" in reply(post(twilio_client, INBOUND, body))
    assert suppressions(db, org.org_id, phone) == ["stop"]


def test_ordinary_reply_is_stored_without_answer(db, org, twilio_client):
    phone = new_phone()
    make_sms(db, org.org_id, phone)
    body = inbound("twilio_inbound_stop.txt", phone, Body="stop sending me these?", OptOutType=None)
    text = reply(post(twilio_client, INBOUND, body))
    assert text == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert suppressions(db, org.org_id, phone) == []
    assert [e["topic"] for e in raw_events(db, org.org_id)] == ["inbound"]


def test_stop_on_a_shared_number_reaches_every_org_that_texted(db, make_org, twilio_client):
    phone = new_phone()
    first, second, bystander = make_org("a"), make_org("b"), make_org("c")
    make_sms(db, first.org_id, phone)
    make_sms(db, second.org_id, phone)
    make_sms(db, bystander.org_id, new_phone())
    text = reply(post(twilio_client, INBOUND, inbound("twilio_inbound_stop.txt", phone)))
    assert "<Message>You are unsubscribed" in text  # several senders: no single name
    assert suppressions(db, first.org_id, phone) == ["stop"]
    assert suppressions(db, second.org_id, phone) == ["stop"]
    assert suppressions(db, bystander.org_id, phone) == []
    assert len(raw_events(db, first.org_id)) == len(raw_events(db, second.org_id)) == 1
    assert raw_events(db, bystander.org_id) == []
    # START lifts both opt-outs (both hold a STOP for this phone).
    reply(post(twilio_client, INBOUND, inbound("twilio_inbound_start.txt", phone)))
    assert suppressions(db, first.org_id, phone) == suppressions(db, second.org_id, phone) == []


def test_dedicated_number_routes_to_its_org_only(db, make_org, twilio_client):
    phone, number = new_phone(), "+15035557777"
    owner, other = make_org("owner"), make_org("other")
    with db.system() as conn:
        update_settings(conn, owner.org_id, {"sender_identities": {"sms": {"from_number": number}}})
    make_sms(db, other.org_id, phone)  # texted the same phone from the shared number
    body = inbound("twilio_inbound_stop.txt", phone, To=number, MessagingServiceSid=None)
    text = reply(post(twilio_client, INBOUND, body))
    assert f"<Message>{owner_name(db, owner.org_id)}: You are unsubscribed" in text
    assert suppressions(db, owner.org_id, phone) == ["stop"]
    assert suppressions(db, other.org_id, phone) == []
    help_body = inbound(
        "twilio_inbound_stop.txt",
        phone,
        To=number,
        MessagingServiceSid=None,
        Body="HELP",
        OptOutType="HELP",
    )
    text = reply(post(twilio_client, INBOUND, help_body))
    assert f"<Message>{owner_name(db, owner.org_id)}: cart reminders." in text


def owner_name(db, org_id) -> str:
    with db.system() as conn:
        return conn.execute("SELECT name FROM app.orgs WHERE org_id = %s", (org_id,)).fetchone()[
            "name"
        ]


def test_help_without_help_text_names_the_org(db, org, twilio_client):
    phone = new_phone()
    make_sms(db, org.org_id, phone)
    body = inbound("twilio_inbound_stop.txt", phone, Body="INFO", OptOutType=None)
    text = reply(post(twilio_client, INBOUND, body))
    expected = escape(DEFAULT_SMS_HELP_TEXT.replace("{store}", owner_name(db, org.org_id)))
    assert f"<Message>{expected}</Message>" in text


def test_stop_from_an_unknown_phone_is_still_confirmed(twilio_client):
    text = reply(post(twilio_client, INBOUND, inbound("twilio_inbound_stop.txt", new_phone())))
    assert "<Message>You are unsubscribed" in text
