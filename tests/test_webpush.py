"""Web push: VAPID keys in every form operators have them, push service answers (404/410
delete the subscription, 429/5xx retry), fresh claims per push, the notification payload.

pywebpush posts to the recorder standing in for the push service.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from conftest import Recorder
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_provider_requests import add_subscription, b64url, browser_keys, verify_vapid

from cartrecovery.runtime import Runtime
from cartrecovery.settings import with_overrides
from delivery.providers import OutgoingMessage, ProviderError, provider_for
from delivery.providers.webpush import BODY_MAX_CHARS, load_vapid_key, notification_payload


def public_point(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def push_message(org_id, recipient: str, **fields) -> OutgoingMessage:
    base = dict(
        org_id=str(org_id),
        message_id=str(uuid.uuid4()),
        cart_id=str(uuid.uuid4()),
        channel="push",
        recipient=recipient,
        subject="Your cart",
        html="",
        text="Still there: https://shop.test/r/abc",
    )
    return OutgoingMessage(**(base | fields))


@pytest.fixture()
def vapid():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture()
def push_runtime(settings, vapid):
    der = vapid.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Runtime(
        with_overrides(
            settings, vapid_private_key=b64url(der), vapid_subject="mailto:ops@example.com"
        )
    )


def subscription_exists(db, org_id, subscription_id) -> bool:
    with db.tenant(org_id) as conn:
        return (
            conn.execute(
                "SELECT 1 FROM app.push_subscriptions WHERE org_id = %s AND subscription_id = %s",
                (org_id, subscription_id),
            ).fetchone()
            is not None
        )


# --- VAPID keys --------------------------------------------------------------------------


def test_vapid_key_forms_all_load_the_same_key(vapid, tmp_path):
    pkcs8 = vapid.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    sec1 = vapid.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    der = b64url(
        vapid.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    raw = b64url(vapid.private_numbers().private_value.to_bytes(32, "big"))
    path = tmp_path / "vapid.pem"
    path.write_text(sec1)
    for form in (pkcs8, sec1, der, raw, str(path), "  " + pkcs8.replace("\n", "\r\n")):
        assert public_point(load_vapid_key(form).private_key) == public_point(vapid), form


@pytest.mark.parametrize("bad", ["", "not-a-key", base64.b64encode(b"x" * 40).decode()])
def test_unusable_vapid_keys_are_refused(bad):
    with pytest.raises(ValueError):
        load_vapid_key(bad)


def test_vapid_key_on_another_curve_is_refused():
    p384 = (
        ec.generate_private_key(ec.SECP384R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ValueError, match="P-256"):
        load_vapid_key(p384)


def test_bad_vapid_key_fails_the_send_for_good(settings, db, org, recorder):
    _, keys = browser_keys()
    sub = add_subscription(db, org.org_id, f"{recorder.url}/push/1", keys)
    rt = Runtime(with_overrides(settings, vapid_private_key="not-a-key"))
    with pytest.raises(ProviderError) as caught:
        provider_for(rt, "push").send(push_message(org.org_id, sub))
    assert (caught.value.retryable, caught.value.reason) == (False, "not_configured")
    assert recorder.requests == []


# --- push service answers ----------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410])
def test_gone_subscription_is_deleted(db, org, recorder, push_runtime, status):
    _, keys = browser_keys()
    sub = add_subscription(db, org.org_id, f"{recorder.url}/push/gone", keys)
    other = add_subscription(db, org.org_id, f"{recorder.url}/push/other", browser_keys()[1])
    recorder.respond("POST", "/push/gone", status, b"")
    with pytest.raises(ProviderError) as caught:
        provider_for(push_runtime, "push").send(push_message(org.org_id, sub))
    assert caught.value.retryable is False
    assert (caught.value.reason, caught.value.code) == ("subscription_gone", status)
    assert not subscription_exists(db, org.org_id, sub)
    assert subscription_exists(db, org.org_id, other)
    # The next message for it fails at once, without calling the push service.
    with pytest.raises(ProviderError) as again:
        provider_for(push_runtime, "push").send(push_message(org.org_id, sub))
    assert again.value.reason == "subscription_gone"
    assert len(recorder.find("POST", "/push/gone")) == 1


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(429, True), (500, True), (503, True), (400, False), (403, False), (413, False)],
)
def test_push_service_errors(db, org, recorder, push_runtime, status, retryable):
    _, keys = browser_keys()
    sub = add_subscription(db, org.org_id, f"{recorder.url}/push/err", keys)
    recorder.respond("POST", "/push/err", status, b"nope")
    with pytest.raises(ProviderError) as caught:
        provider_for(push_runtime, "push").send(push_message(org.org_id, sub))
    assert caught.value.retryable is retryable
    assert caught.value.code == status
    assert subscription_exists(db, org.org_id, sub)


def test_unreachable_push_service_is_retryable(db, org, push_runtime):
    sub = add_subscription(db, org.org_id, "http://127.0.0.1:9/push/x", browser_keys()[1])
    with pytest.raises(ProviderError) as caught:
        provider_for(push_runtime, "push").send(push_message(org.org_id, sub))
    assert caught.value.retryable is True


def test_each_push_gets_its_own_audience(db, org, recorder, push_runtime):
    """pywebpush writes aud/exp into the claims dict: a shared dict would sign the second
    push for the first push service."""
    second = Recorder()
    try:
        first_sub = add_subscription(db, org.org_id, f"{recorder.url}/p/1", browser_keys()[1])
        second_sub = add_subscription(db, org.org_id, f"{second.url}/p/2", browser_keys()[1])
        recorder.respond("POST", "/p/1", 201, b"")
        second.respond("POST", "/p/2", 201, b"")
        provider = provider_for(push_runtime, "push")
        provider.send(push_message(org.org_id, first_sub))
        provider.send(push_message(org.org_id, second_sub))
        [one] = recorder.find("POST", "/p/1")
        [two] = second.find("POST", "/p/2")
        auth = {k.lower(): v for k, v in one["headers"].items()}["authorization"]
        assert verify_vapid(auth)["aud"] == recorder.url
        auth = {k.lower(): v for k, v in two["headers"].items()}["authorization"]
        assert verify_vapid(auth)["aud"] == second.url
    finally:
        second.close()


def test_subscription_can_be_addressed_by_endpoint(db, org, recorder, push_runtime):
    endpoint = f"{recorder.url}/push/by-endpoint"
    add_subscription(db, org.org_id, endpoint, browser_keys()[1])
    recorder.respond("POST", "/push/by-endpoint", 201, b"")
    result = provider_for(push_runtime, "push").send(push_message(org.org_id, endpoint))
    assert result.provider == "webpush"
    assert len(recorder.find("POST", "/push/by-endpoint")) == 1


def test_other_orgs_subscription_is_not_reachable(db, org, make_org, recorder, push_runtime):
    other = make_org("other")
    sub = add_subscription(db, other.org_id, f"{recorder.url}/push/theirs", browser_keys()[1])
    with pytest.raises(ProviderError) as caught:
        provider_for(push_runtime, "push").send(push_message(org.org_id, sub))
    assert caught.value.reason == "subscription_gone"
    assert recorder.requests == []
    assert subscription_exists(db, other.org_id, sub)


# --- payload -----------------------------------------------------------------------------


def test_payload_uses_the_first_link_and_stays_short():
    long_text = "Hello " + "word " * 100 + "https://shop.test/r/xyz and more"
    payload = notification_payload(push_message("o", "s", text=long_text, subject=" Hi\nthere "))
    assert payload["url"] == "https://shop.test/r/xyz"
    assert payload["title"] == "Hi there"
    assert len(payload["body"]) == BODY_MAX_CHARS and payload["body"].endswith("…")
    assert "https://" not in payload["body"]
    assert set(payload) == {"title", "body", "url", "tag", "data"}
    assert len(json.dumps(payload).encode()) < 3993  # fits one encrypted push record
