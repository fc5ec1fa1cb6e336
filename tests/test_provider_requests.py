"""The exact requests SendGrid, Twilio and a web push service receive.

Real SDKs (sendgrid, twilio, pywebpush) pointed at the recorder; bodies are compared field by
field with the shapes of the fixtures in ../shared/fixtures. The push body is decrypted with
the browser's private key generated here, the VAPID JWT verified with the key it names.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import http_ece
import pytest
from conftest import fixture_bytes
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from cartrecovery.runtime import Runtime
from cartrecovery.settings import with_overrides
from delivery.providers import OutgoingMessage, provider_for
from delivery.providers.sms_segments import count_segments

ACCOUNT_SID = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
AUTH_TOKEN = "test_auth_token_0123456789abcdef"
SERVICE_SID = "MGbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
PUBLIC_URL = "https://api.cartrecovery.example.com"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def message(org_id, channel, recipient, **fields) -> OutgoingMessage:
    base = dict(
        org_id=str(org_id),
        message_id=str(uuid.uuid4()),
        cart_id=str(uuid.uuid4()),
        channel=channel,
        recipient=recipient,
        subject="Still thinking it over?",
        html="<p>Your cart</p>",
        text="Your cart is waiting.",
        step_index=0,
        sender_name="Example Outfitters",
    )
    return OutgoingMessage(**(base | fields))


def twilio_message_json(sid: str, to: str, body: str) -> dict:
    return {
        "sid": sid,
        "account_sid": ACCOUNT_SID,
        "to": to,
        "body": body,
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "messaging_service_sid": SERVICE_SID,
        "uri": f"{MESSAGES_PATH[:-5]}/{sid}.json",
    }


# --- SendGrid ----------------------------------------------------------------------------


def test_sendgrid_request_body(settings, org, recorder):
    recorder.respond("POST", "/v3/mail/send", 202, b"", {"X-Message-Id": "sg-1"})
    rt = Runtime(
        with_overrides(
            settings,
            sendgrid_api_key="SG.key",
            from_email="shop@x.test",
            sendgrid_base_url=recorder.url,
        )
    )
    msg = message(
        org.org_id, "email", "jane.doe@example.com", step_index=1, tags={"campaign_id": "c-1"}
    )
    result = provider_for(rt, "email").send(msg)
    assert (result.provider, result.provider_message_id) == ("sendgrid", "sg-1")

    [request] = recorder.find("POST", "/v3/mail/send")
    assert request["headers"]["Authorization"] == "Bearer SG.key"
    body = json.loads(request["body"])
    shape = json.loads(fixture_bytes("sendgrid_mail_send_request.json"))
    # Same top-level vocabulary as the documented request; content instead of a template.
    assert {"personalizations", "from", "categories"} <= set(shape) & set(body)
    assert body["from"] == {"email": "shop@x.test", "name": "Example Outfitters"}
    assert body["personalizations"] == [{"to": [{"email": "jane.doe@example.com"}]}]
    assert body["subject"] == msg.subject
    assert body["content"] == [
        {"type": "text/plain", "value": msg.text},
        {"type": "text/html", "value": msg.html},
    ]
    assert body["custom_args"] == {
        "message_id": msg.message_id,
        "org_id": msg.org_id,
        "cart_id": msg.cart_id,
        "campaign_id": "c-1",
    }
    assert all(isinstance(v, str) for v in body["custom_args"].values())
    assert sorted(body["categories"]) == ["cart_recovery", "step_2"]
    assert body["headers"] == {"X-Cartrecovery-Message-Id": msg.message_id}
    assert "jane.doe" not in json.dumps([body["custom_args"], body["categories"]])


# --- Twilio ------------------------------------------------------------------------------


def twilio_runtime(settings, recorder, **overrides) -> Runtime:
    values = dict(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_base_url=recorder.url,
        app_url=PUBLIC_URL,
    )
    return Runtime(with_overrides(settings, **(values | overrides)))


def test_twilio_request_matches_the_documented_create_request(settings, org, recorder):
    shape = {
        k: v[0]
        for k, v in parse_qs(
            fixture_bytes("twilio_message_create_request.txt").decode(), keep_blank_values=True
        ).items()
    }
    recorder.respond(
        "POST",
        MESSAGES_PATH,
        201,
        twilio_message_json("SM0123456789abcdef0123456789abcdef", shape["To"], shape["Body"]),
    )
    rt = twilio_runtime(settings, recorder, twilio_messaging_service_sid=SERVICE_SID)
    msg = message(org.org_id, "sms", shape["To"], text=shape["Body"])
    result = provider_for(rt, "sms").send(msg)

    assert result.provider == "twilio"
    assert result.provider_message_id == "SM0123456789abcdef0123456789abcdef"
    assert result.segments == count_segments(shape["Body"]).segments == 1
    [request] = recorder.find("POST", MESSAGES_PATH)
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    expected_auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert request["headers"]["Authorization"] == f"Basic {expected_auth}"
    sent = parse_qs(request["body"].decode(), keep_blank_values=True)
    assert all(len(v) == 1 for v in sent.values())
    sent = {k: v[0] for k, v in sent.items()}
    assert set(sent) == set(shape) == {"To", "MessagingServiceSid", "Body", "StatusCallback"}
    assert sent["To"] == shape["To"]
    assert sent["MessagingServiceSid"] == shape["MessagingServiceSid"]
    assert sent["Body"] == shape["Body"]  # it already says how to opt out: sent unchanged
    callback = urlsplit(sent["StatusCallback"])
    assert (
        f"{callback.scheme}://{callback.netloc}{callback.path}"
        == f"{PUBLIC_URL}/api/webhooks/twilio/status"
    )
    assert parse_qs(callback.query) == {"org_id": [msg.org_id], "message_id": [msg.message_id]}


def test_twilio_from_number_and_opt_out_footer(settings, org, recorder):
    recorder.respond("POST", MESSAGES_PATH, 201, twilio_message_json("SMfeed", "+15035550123", "x"))
    rt = twilio_runtime(settings, recorder, twilio_phone_number="+15035559876")
    text = "Hi Jane, your beanie is waiting: https://shop.example.com/r/abc\n"
    provider_for(rt, "sms").send(message(org.org_id, "sms", "+15035550123", text=text))
    [request] = recorder.find("POST", MESSAGES_PATH)
    sent = {k: v[0] for k, v in parse_qs(request["body"].decode()).items()}
    assert set(sent) == {"To", "From", "Body", "StatusCallback"}
    assert sent["From"] == "+15035559876"
    assert sent["Body"] == (
        "Hi Jane, your beanie is waiting: https://shop.example.com/r/abc\nReply STOP to opt out."
    )


# --- Web push ----------------------------------------------------------------------------


def browser_keys() -> tuple[ec.EllipticCurvePrivateKey, dict]:
    """A subscription's key material as a browser makes it: P-256 pair and auth secret."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return private, {"p256dh": b64url(public), "auth": b64url(os.urandom(16))}


def add_subscription(db, org_id, endpoint: str, keys: dict) -> str:
    with db.tenant(org_id) as conn:
        row = conn.execute(
            "INSERT INTO app.push_subscriptions (org_id, endpoint, p256dh, auth) "
            "VALUES (%s, %s, %s, %s) RETURNING subscription_id",
            (org_id, endpoint, keys["p256dh"], keys["auth"]),
        ).fetchone()
    return str(row["subscription_id"])


def verify_vapid(header: str) -> dict:
    """Check ``vapid t=<JWT>, k=<key>``: ES256 signature by k; return the JWT claims."""
    found = re.fullmatch(r"vapid t=([^,\s]+),\s*k=([^,\s]+)", header)
    assert found, header
    token, key = found.groups()
    head, claims, signature = token.split(".")
    assert json.loads(b64url_decode(head)) == {"typ": "JWT", "alg": "ES256"}
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
    raw = b64url_decode(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(b64url_decode(claims))


@pytest.fixture()
def vapid_key() -> str:
    """A VAPID private key as base64url DER (what `vapid --gen` / openssl give)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_push_request_is_encrypted_and_vapid_signed(settings, db, org, recorder, vapid_key):
    browser, keys = browser_keys()
    subscription_id = add_subscription(db, org.org_id, f"{recorder.url}/push/abc", keys)
    recorder.respond("POST", "/push/abc", 201, b"", {"Location": f"{recorder.url}/m/1"})
    rt = Runtime(
        with_overrides(
            settings, vapid_private_key=vapid_key, vapid_subject="mailto:ops@example.com"
        )
    )
    restore = "https://recover.example.com/r/rc_01HTXK4M7Q2B9V6N3J8P5R1S0T"
    msg = message(
        org.org_id,
        "push",
        subscription_id,
        subject="You left something behind",
        text="Your Merino Wool Beanie is still in your cart.",
        url=restore,
        icon="https://cdn.example.com/img/icon-192.png",
    )
    result = provider_for(rt, "push").send(msg)
    assert (result.provider, result.provider_message_id) == ("webpush", f"{recorder.url}/m/1")

    [request] = recorder.find("POST", "/push/abc")
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["ttl"] == "86400"
    assert headers["content-encoding"] == "aes128gcm"
    assert headers["urgency"] == "normal"
    assert headers["topic"] == msg.cart_id.replace("-", "")
    claims = verify_vapid(headers["authorization"])
    assert claims["aud"] == recorder.url  # the push service's origin
    assert claims["sub"] == "mailto:ops@example.com"
    assert isinstance(claims["exp"], int)

    plaintext = http_ece.decrypt(
        request["body"],
        private_key=browser,
        auth_secret=b64url_decode(keys["auth"]),
        version="aes128gcm",
    )
    payload = json.loads(plaintext)
    shape = json.loads(fixture_bytes("webpush_notification_payload.json"))
    assert set(payload) <= set(shape)
    assert payload == {
        "title": "You left something behind",
        "body": "Your Merino Wool Beanie is still in your cart.",
        "icon": "https://cdn.example.com/img/icon-192.png",
        "url": restore,
        "tag": f"cart-{msg.cart_id}",
        "data": {"cart_id": msg.cart_id, "message_id": msg.message_id, "campaign_step": "1"},
    }
    assert keys["auth"] not in request["body"].decode("latin-1")
    assert b"Beanie" not in request["body"]
