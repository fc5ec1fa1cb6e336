"""SMS: segment counting, keywords, the Twilio provider's errors and bookkeeping, the local
outbox for every channel, and which provider each channel gets.

The Twilio SDK talks to the recorder; its answers are Twilio's documented error shapes.
"""

from __future__ import annotations

import math
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cartrecovery import sms_keywords
from cartrecovery.org_settings import update_settings
from cartrecovery.runtime import Runtime
from cartrecovery.settings import with_overrides
from cartrecovery.sms_keywords import Keyword
from delivery.providers import OutgoingMessage, ProviderError, provider_for
from delivery.providers.local import LocalProvider
from delivery.providers.sendgrid import SendGridProvider
from delivery.providers.sms_segments import GSM7_BASIC, count_segments
from delivery.providers.twilio_sms import TwilioSmsProvider, sms_body
from delivery.providers.webpush import WebPushProvider

ACCOUNT_SID = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
PHONE = "+15035550123"


def make_outbox(db, org_id, channel: str, recipient: str) -> dict:
    """An abandoned cart, a campaign and one outbox row on ``channel`` in the state the job
    leaves it in while the provider sends ('sending', so no scheduler tick picks it up)."""
    with db.tenant(org_id) as conn:
        cart = conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, status, abandoned_at) "
            "VALUES (%s, 'custom', %s, 'abandoned', now()) RETURNING cart_id",
            (org_id, uuid.uuid4().hex),
        ).fetchone()
        campaign = conn.execute(
            "INSERT INTO app.campaigns (org_id, name) VALUES (%s, 'sms') RETURNING campaign_id",
            (org_id,),
        ).fetchone()
        return conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
            "recipient, due_at, status) VALUES (%s, %s, %s, 0, %s, %s, now(), 'sending') "
            "RETURNING *",
            (org_id, cart["cart_id"], campaign["campaign_id"], channel, recipient),
        ).fetchone()


def outgoing(
    row: dict, text: str = "Your cart is waiting: https://shop.test/r/1", **fields
) -> OutgoingMessage:
    return OutgoingMessage(
        org_id=str(row["org_id"]),
        message_id=str(row["message_id"]),
        cart_id=str(row["cart_id"]),
        channel=row["channel"],
        recipient=row["recipient"],
        subject="Still yours",
        html="<p>x</p>",
        text=text,
        **fields,
    )


def outbox_row(db, org_id, message_id) -> dict:
    with db.tenant(org_id) as conn:
        return conn.execute(
            "SELECT * FROM app.outbox WHERE org_id = %s AND message_id = %s", (org_id, message_id)
        ).fetchone()


def suppression(db, org_id, address: str) -> dict | None:
    with db.tenant(org_id) as conn:
        return conn.execute(
            "SELECT reason FROM app.suppressions WHERE org_id = %s AND channel = 'sms' "
            "AND address = %s",
            (org_id, address),
        ).fetchone()


# --- segments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("", "GSM-7", 1),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # 160 septets: extension characters cost two
        ("€" * 81, "GSM-7", 2),
        # 306 septets would fit two segments, but the escape pair may not straddle them.
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 3),
        ("Grüße aus Köln! Ihr Warenkorb wartet.", "GSM-7", 1),
        ("ł" * 70, "UCS-2", 1),
        ("ł" * 71, "UCS-2", 2),
        ("ł" * 134, "UCS-2", 2),
        ("ł" * 135, "UCS-2", 3),
        ("a" * 159 + "ł", "UCS-2", 3),  # one non-GSM character switches the whole body
        ("😀" * 35, "UCS-2", 1),  # surrogate pairs: two code units each
        ("😀" * 36, "UCS-2", 2),
        ("a" * 66 + "😀" + "a" * 66, "UCS-2", 3),  # a pair is never split across segments
    ],
)
def test_segment_count(text, encoding, segments):
    counted = count_segments(text)
    assert (counted.encoding, counted.segments) == (encoding, segments)


@given(st.text(alphabet=sorted(GSM7_BASIC), max_size=700))
def test_gsm7_segments_match_the_formula(text):
    counted = count_segments(text)
    assert counted.units == len(text)
    expected = 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    assert counted.segments == expected


@given(st.text(max_size=400))
def test_segments_cover_every_unit(text):
    counted = count_segments(text)
    single, multi = (160, 153) if counted.encoding == "GSM-7" else (70, 67)
    if counted.units <= single:
        assert counted.segments == 1
    else:
        assert counted.segments * multi >= counted.units
        assert counted.segments >= 2


def test_sms_body_adds_opt_out_language_once():
    assert (
        sms_body("  Hi Jane  \n  your cart: https://x.test/r/1  \n\n")
        == "Hi Jane\n  your cart: https://x.test/r/1\nReply STOP to opt out."
    )
    assert sms_body("Hi, reply STOP to end") == "Hi, reply STOP to end"
    assert sms_body("") == "Reply STOP to opt out."


# --- keywords ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", Keyword.OPT_OUT),
        ("stop", Keyword.OPT_OUT),
        ("  Stop.  ", Keyword.OPT_OUT),
        ("STOPALL", Keyword.OPT_OUT),
        ("unsubscribe", Keyword.OPT_OUT),
        ("Cancel", Keyword.OPT_OUT),
        ("END", Keyword.OPT_OUT),
        ("quit", Keyword.OPT_OUT),
        ("REVOKE", Keyword.OPT_OUT),
        ("optout", Keyword.OPT_OUT),
        ("START", Keyword.OPT_IN),
        ("unstop", Keyword.OPT_IN),
        ("Yes", Keyword.OPT_IN),
        ("HELP", Keyword.HELP),
        ("info!", Keyword.HELP),
        ("stop sending me these", None),
        ("please stop", None),
        ("STOPP", None),
        ("opt out", None),
        ("", None),
        ("thanks", None),
    ],
)
def test_keyword_classification(body, expected):
    assert sms_keywords.classify(body) is expected


def test_advanced_opt_out_classification_wins():
    assert sms_keywords.classify("ARRET", "STOP") is Keyword.OPT_OUT
    assert sms_keywords.classify("whatever", "start") is Keyword.OPT_IN
    assert sms_keywords.classify("HELP", "") is Keyword.HELP


# --- the Twilio provider -----------------------------------------------------------------


@pytest.fixture()
def twilio(settings, recorder):
    def make(**overrides) -> Runtime:
        values = dict(
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token="token",
            twilio_base_url=recorder.url,
            twilio_phone_number="+15035559876",
        )
        return Runtime(with_overrides(settings, **(values | overrides)))

    return make


def twilio_error(code: int, status: int, message: str) -> dict:
    return {
        "code": code,
        "message": message,
        "status": status,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
    }


def test_send_records_segments_and_sid(db, org, twilio, recorder):
    row = make_outbox(db, org.org_id, "sms", PHONE)
    recorder.respond("POST", MESSAGES_PATH, 201, {"sid": "SMabc", "status": "queued"})
    text = "ł" * 100  # UCS-2 plus the footer: 123 units, 2 segments
    result = provider_for(twilio(), "sms").send(outgoing(row, text))
    assert (result.provider_message_id, result.segments) == ("SMabc", 2)
    assert outbox_row(db, org.org_id, row["message_id"])["segments"] == 2


def test_org_sender_setting_is_used(db, org, twilio, recorder):
    with db.system() as conn:
        update_settings(
            conn, org.org_id, {"sender_identities": {"sms": {"from_number": "+15035551111"}}}
        )
    row = make_outbox(db, org.org_id, "sms", PHONE)
    recorder.respond("POST", MESSAGES_PATH, 201, {"sid": "SMorg"})
    provider_for(twilio(), "sms").send(outgoing(row))
    provider_for(twilio(), "sms").send(outgoing(row, sender="MGcccccccccccccccccccccccccccccccc"))
    first, second = recorder.find("POST", MESSAGES_PATH)
    assert "From=%2B15035551111" in first["body"].decode()
    assert "MessagingServiceSid=MGcccc" in second["body"].decode()
    assert "From=" not in second["body"].decode()


def test_unsubscribed_recipient_is_suppressed_and_not_retried(db, org, twilio, recorder):
    row = make_outbox(db, org.org_id, "sms", PHONE)
    recorder.respond(
        "POST",
        MESSAGES_PATH,
        400,
        twilio_error(21610, 400, "Attempt to send to unsubscribed recipient"),
    )
    with pytest.raises(ProviderError) as caught:
        provider_for(twilio(), "sms").send(outgoing(row))
    assert caught.value.retryable is False
    assert (caught.value.reason, caught.value.code) == ("unsubscribed", 21610)
    assert suppression(db, org.org_id, PHONE) == {"reason": "stop"}


def test_invalid_number_is_suppressed(db, org, twilio, recorder):
    row = make_outbox(db, org.org_id, "sms", "+15035550199")
    recorder.respond(
        "POST",
        MESSAGES_PATH,
        400,
        twilio_error(21211, 400, "The 'To' number is not a valid phone number."),
    )
    with pytest.raises(ProviderError) as caught:
        provider_for(twilio(), "sms").send(outgoing(row))
    assert (caught.value.retryable, caught.value.reason) == (False, "invalid_number")
    assert suppression(db, org.org_id, "+15035550199") == {"reason": "invalid_number"}


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (429, 20429, True),
        (503, 20503, True),
        (500, 20500, True),
        (400, 21602, False),
        (401, 20003, False),
    ],
)
def test_error_retryability(db, org, twilio, recorder, status, code, retryable):
    row = make_outbox(db, org.org_id, "sms", PHONE)
    recorder.respond("POST", MESSAGES_PATH, status, twilio_error(code, status, "nope"))
    with pytest.raises(ProviderError) as caught:
        provider_for(twilio(), "sms").send(outgoing(row))
    assert caught.value.retryable is retryable
    assert caught.value.code == code
    assert suppression(db, org.org_id, PHONE) is None


def test_unreachable_twilio_is_retryable(db, org, twilio):
    row = make_outbox(db, org.org_id, "sms", PHONE)
    provider = provider_for(twilio(twilio_base_url="http://127.0.0.1:9"), "sms")
    with pytest.raises(ProviderError) as caught:
        provider.send(outgoing(row))
    assert caught.value.retryable is True


def test_missing_sender_is_a_configuration_error(db, org, twilio, recorder):
    row = make_outbox(db, org.org_id, "sms", PHONE)
    with pytest.raises(ProviderError) as caught:
        provider_for(twilio(twilio_phone_number=None), "sms").send(outgoing(row))
    assert (caught.value.retryable, caught.value.reason) == (False, "not_configured")
    assert recorder.find("POST", MESSAGES_PATH) == []


# --- local outbox and provider choice ----------------------------------------------------


def test_local_provider_stores_all_three_channels(db, org, settings):
    rt = Runtime(settings)
    email = make_outbox(db, org.org_id, "email", "jane@example.com")
    sms = make_outbox(db, org.org_id, "sms", PHONE)
    push = make_outbox(db, org.org_id, "push", str(uuid.uuid4()))
    for row, html in ((email, "<p>Hi</p>"), (sms, "<p>ignored</p>"), (push, "<p>ignored</p>")):
        provider = provider_for(rt, row["channel"])
        assert isinstance(provider, LocalProvider)
        message = OutgoingMessage(
            org_id=str(org.org_id),
            message_id=str(row["message_id"]),
            cart_id=str(row["cart_id"]),
            channel=row["channel"],
            recipient=row["recipient"],
            subject="Still yours",
            html=html,
            text="Hi Jane: https://shop.test/r/1",
        )
        result = provider.send(message)
        assert result.provider_message_id == str(row["message_id"])
        provider.send(message)  # a second send changes nothing
    with db.tenant(org.org_id) as conn:
        stored = {
            r["channel"]: r
            for r in conn.execute(
                "SELECT channel, recipient, subject, body_html, body_text FROM app.local_mailbox "
                "WHERE org_id = %s",
                (org.org_id,),
            ).fetchall()
        }
    assert stored["email"] == {
        "channel": "email",
        "recipient": "jane@example.com",
        "subject": "Still yours",
        "body_html": "<p>Hi</p>",
        "body_text": "Hi Jane: https://shop.test/r/1",
    }
    assert stored["sms"] == {
        "channel": "sms",
        "recipient": PHONE,
        "subject": None,
        "body_html": None,
        "body_text": "Hi Jane: https://shop.test/r/1\nReply STOP to opt out.",
    }
    assert stored["push"] == {
        "channel": "push",
        "recipient": push["recipient"],
        "subject": "Still yours",
        "body_html": None,
        "body_text": "Hi Jane:\n\nhttps://shop.test/r/1",
    }
    assert outbox_row(db, org.org_id, sms["message_id"])["segments"] == 1


def test_provider_for_picks_by_settings(settings):
    bare = Runtime(settings)
    assert all(isinstance(provider_for(bare, c), LocalProvider) for c in ("email", "sms", "push"))
    assert provider_for(bare, "fax") is None
    keyed = Runtime(
        with_overrides(
            settings,
            sendgrid_api_key="SG.x",
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token="t",
            twilio_phone_number="+15035559876",
            vapid_private_key="k",
        )
    )
    assert isinstance(provider_for(keyed, "email"), SendGridProvider)
    assert isinstance(provider_for(keyed, "sms"), TwilioSmsProvider)
    assert isinstance(provider_for(keyed, "push"), WebPushProvider)
    # A SID without its token cannot send: the local outbox keeps the message.
    half = Runtime(with_overrides(settings, twilio_account_sid=ACCOUNT_SID))
    assert isinstance(provider_for(half, "sms"), LocalProvider)
    # One instance (and connection pool) per runtime and channel.
    assert provider_for(keyed, "sms") is provider_for(keyed, "sms")
    assert provider_for(keyed, "sms") is not provider_for(Runtime(keyed.settings), "sms")
