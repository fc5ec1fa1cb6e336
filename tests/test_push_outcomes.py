"""Push outcomes told apart, through the real send job and pywebpush against a recording push
service: a push the service answered 410 is held ``push_subscription_gone`` with the answer
kept, a push never attempted (no subscription left) ``no_push_subscription``; the 410 and a
template error show in the worker's log at its default level (warnings)."""

from __future__ import annotations

import logging

import pytest
from test_gate import (
    ALWAYS,
    EMAIL_STEP,
    PUSH_STEP,
    configure,
    grant,
    make_cart,
    make_message,
    row,
    send,
)
from test_provider_requests import add_subscription, browser_keys
from test_webpush import push_runtime, vapid  # noqa: F401

from delivery import jobs


@pytest.fixture()
def worker(push_runtime):  # noqa: F811
    jobs.configure(push_runtime)
    yield push_runtime
    jobs.configure(None)


def warnings(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def test_a_410_is_its_own_outcome_and_is_logged(db, org, recorder, worker, caplog):
    configure(db, org.org_id, quiet_hours=ALWAYS, frequency_caps={"push": 0})
    cart = make_cart(db, org.org_id, email="p@example.com")
    subscription = add_subscription(db, org.org_id, f"{recorder.url}/push/gone", browser_keys()[1])
    recorder.respond("POST", "/push/gone", 410, b"push subscription has unsubscribed or expired")
    caplog.set_level(logging.WARNING)

    gone = send(make_message(db, cart, [PUSH_STEP], recipient=subscription))
    assert (gone["status"], gone["reason"]) == ("held", "push_subscription_gone")
    assert (gone["provider"], gone["delivery_error_code"]) == ("webpush", "410")
    assert len(recorder.find("POST", "/push/gone")) == 1
    assert "push_subscription_gone" in warnings(caplog) and "410" in warnings(caplog)

    # The next push finds no subscription: never attempted, and said so.
    never = send(make_message(db, cart, [PUSH_STEP], recipient=subscription))
    assert (never["status"], never["reason"]) == ("held", "no_push_subscription")
    assert never["delivery_error_code"] is None
    assert len(recorder.find("POST", "/push/gone")) == 1


def test_a_template_error_is_logged(db, org, worker, caplog):
    configure(db, org.org_id, quiet_hours=ALWAYS)
    cart = make_cart(db, org.org_id, email="t@example.com")
    grant(db, org.org_id, "email", "t@example.com")
    step = {**EMAIL_STEP, "template": "Hello {{ broken( }}"}
    caplog.set_level(logging.WARNING)
    message = make_message(db, cart, [step])
    held = send(message)
    assert held["status"] == "held" and held["reason"].startswith("template_error")
    assert f"message {message['message_id']} held: template_error" in warnings(caplog)
    assert row(message)["provider"] is None  # never handed to a provider
