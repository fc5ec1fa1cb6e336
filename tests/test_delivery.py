"""Delivery: scheduler tick, RQ worker, send-time gate, rendering, SendGrid and local providers.

Real Postgres, real Redis, a real RQ worker in burst mode, and the real SendGrid SDK pointed
at the recorder. Each test works on a queue of its own and deletes its jobs afterwards.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import timedelta

import pytest
from conftest import remove_queue, wait_for
from prometheus_client import REGISTRY
from psycopg.types.json import Jsonb
from rq import Queue

from cartrecovery.consents import record_consent
from cartrecovery.runtime import Runtime
from cartrecovery.settings import with_overrides
from cartrecovery.signed_links import read_token
from delivery import jobs, scheduler
from delivery.enrollment import campaign_matches
from delivery.worker import run_worker

SEND_PATH = "/v3/mail/send"
RESTORE = "https://shop.example.com/cart/restore/abc123"
STEPS = [
    {
        "channel": "email",
        "delay_seconds": 0,
        "subject": "{{ store.name }}: still yours",
        "template": "cart_reminder",
    },
    {
        "channel": "email",
        "delay_seconds": 3600,
        "subject": "Last call",
        "template": "cart_reminder",
    },
]


@pytest.fixture()
def make_runtime(settings, recorder):
    """Runtimes on a per-test queue; SendGrid (the recorder) unless ``sendgrid=False``."""
    made: list[Runtime] = []
    queue_name = f"{settings.queue_name}-{uuid.uuid4().hex[:8]}"
    recorder.respond("POST", SEND_PATH, 202, b"", {"X-Message-Id": "sg-msg-1"})

    def make(sendgrid: bool = True, **overrides) -> Runtime:
        changes = {"queue_name": queue_name, "scheduler_interval_seconds": 0.05}
        if sendgrid:
            changes |= {
                "sendgrid_api_key": "SG.test-key",
                "sendgrid_base_url": recorder.url,
                "from_email": "shop@example.com",
            }
        rt = Runtime(with_overrides(settings, **(changes | overrides)))
        jobs.configure(rt)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        remove_queue(rt)
    jobs.configure(None)


@pytest.fixture()
def rt(make_runtime) -> Runtime:
    return make_runtime()


def set_timeout(db, org_id, seconds=60):
    """Also opens the quiet-hours window to the whole day: these tests are about delivery, not
    the time of day they run at (tests/test_gate.py covers quiet hours)."""
    with db.system() as conn:
        conn.execute(
            "UPDATE app.orgs SET abandonment_timeout_seconds = %s, settings = settings "
            '|| \'{"quiet_hours": {"start": "00:00", "end": "24:00"}}\' '
            "WHERE org_id = %s",
            (seconds, org_id),
        )


def make_campaign(db, org_id, steps=None, *, priority=0, conditions=None, status="active"):
    with db.system() as conn:
        return conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status, priority, trigger_conditions, "
            "sequence_steps) VALUES (%s, %s, %s, %s, %s, %s) RETURNING campaign_id",
            (
                org_id,
                f"c-{uuid.uuid4().hex[:6]}",
                status,
                priority,
                Jsonb(conditions or {}),
                Jsonb(steps if steps is not None else STEPS),
            ),
        ).fetchone()["campaign_id"]


def make_cart(
    db,
    org_id,
    *,
    email="jane@example.com",
    idle=120,
    total="71.82",
    currency="USD",
    items=None,
    consent=True,
):
    """An idle cart; its email has a granted consent in the ledger unless ``consent=False``."""
    items = (
        items
        if items is not None
        else [
            {
                "title": "Merino <Beanie>",
                "quantity": 2,
                "price": "24.00",
                "image": "https://cdn.example.com/beanie.jpg",
            },
            {"title": "Trail Socks", "quantity": 1, "price": "23.82"},
        ]
    )
    with db.system() as conn:
        if email and consent:
            record_consent(
                conn, org_id, channel="email", address=email, status="granted", source="checkout"
            )
        return conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, email, currency, total_price, "
            "line_items, restore_url, last_activity_at) VALUES (%s, 'custom', %s, %s, %s, %s, "
            "%s, %s, now() - make_interval(secs => %s)) RETURNING cart_id",
            (org_id, uuid.uuid4().hex, email, currency, total, Jsonb(items), RESTORE, idle),
        ).fetchone()["cart_id"]


def outbox_rows(db, cart_id):
    with db.system() as conn:
        return conn.execute(
            "SELECT * FROM app.outbox WHERE cart_id = %s ORDER BY step_index", (cart_id,)
        ).fetchall()


def restore_link(rt, text, row) -> str:
    """The signed restore link in ``text``, checked to name ``row``'s message and cart."""
    found = re.search(re.escape(rt.settings.app_url.rstrip("/")) + r"/r/([A-Za-z0-9_.\-]+)", text)
    assert found, text
    token = read_token(rt.settings.secret_key, found.group(1))
    assert (str(token.message_id), str(token.cart_id)) == (
        str(row["message_id"]),
        str(row["cart_id"]),
    )
    return found.group(0)


def sql(db, statement, params=()):
    with db.system() as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else None


def burst(rt: Runtime) -> None:
    run_worker(rt.settings, burst=True)


def sends_to(recorder, email):
    found = []
    for r in recorder.find("POST", SEND_PATH):
        body = json.loads(r["body"])
        if body["personalizations"][0]["to"][0]["email"] == email:
            found.append((r, body))
    return found


@pytest.fixture()
def abandoned(db, org, rt):
    """An org with a 60 s timeout, one matching campaign, one idle cart, after one tick."""
    set_timeout(db, org.org_id)
    campaign_id = make_campaign(db, org.org_id)
    email = f"jane-{uuid.uuid4().hex[:6]}@example.com"
    cart_id = make_cart(db, org.org_id, email=email)
    scheduler.tick(rt)
    return {"org": org, "campaign_id": campaign_id, "cart_id": cart_id, "email": email}


def test_tick_abandons_idle_carts_and_schedules_steps(db, org, rt):
    set_timeout(db, org.org_id, 60)
    make_campaign(db, org.org_id, priority=10, conditions={"cart_value_min": 1000})
    make_campaign(db, org.org_id, priority=20, status="paused")
    make_campaign(db, org.org_id, priority=5, conditions={"currency": "EUR"})
    chosen = make_campaign(
        db,
        org.org_id,
        priority=1,
        conditions={"cart_value_min": 50, "cart_value_max": 100, "currency": "usd"},
    )
    idle = make_cart(db, org.org_id, idle=120)
    fresh = make_cart(db, org.org_id, idle=10)
    no_email = make_cart(db, org.org_id, email=None, idle=120)

    counts = scheduler.tick(rt)

    assert counts["abandoned"] >= 1 and counts["scheduled"] >= 2
    carts = {
        r["cart_id"]: r for r in sql(db, "SELECT * FROM app.carts WHERE org_id = %s", (org.org_id,))
    }
    assert carts[idle]["status"] == "abandoned" and carts[idle]["abandoned_at"] is not None
    assert carts[fresh]["status"] == "active"
    assert carts[no_email]["status"] == "active"
    enrollments = sql(db, "SELECT * FROM app.enrollments WHERE org_id = %s", (org.org_id,))
    assert [(e["cart_id"], e["campaign_id"]) for e in enrollments] == [(idle, chosen)]

    rows = outbox_rows(db, idle)
    abandoned_at = carts[idle]["abandoned_at"]
    assert [r["due_at"] - abandoned_at for r in rows] == [timedelta(0), timedelta(hours=1)]
    assert all(r["recipient"] == "jane@example.com" and r["channel"] == "email" for r in rows)
    assert [r["subject"] for r in rows] == [s["subject"] for s in STEPS]
    assert [r["status"] for r in rows] == ["enqueued", "scheduled"]
    assert rows[0]["enqueued_at"] is not None
    assert jobs.queue(rt).get_job_ids() == [str(rows[0]["message_id"])]

    scheduler.tick(rt)  # a second tick enrolls nothing and enqueues nothing new
    assert len(outbox_rows(db, idle)) == 2
    assert jobs.queue(rt).get_job_ids() == [str(rows[0]["message_id"])]


def test_worker_sends_through_sendgrid(db, abandoned, rt, recorder):
    burst(rt)

    sent = sends_to(recorder, abandoned["email"])
    assert len(sent) == 1
    request, body = sent[0]
    row = outbox_rows(db, abandoned["cart_id"])[0]
    org = abandoned["org"]
    assert request["headers"]["Authorization"] == "Bearer SG.test-key"
    assert body["from"]["email"] == "shop@example.com"
    store_name = sql(db, "SELECT name FROM app.orgs WHERE org_id = %s", (org.org_id,))[0]["name"]
    assert body["subject"] == f"{store_name}: still yours"
    content = {c["type"]: c["value"] for c in body["content"]}
    # The message links to the signed restore link, which redirects to the platform's URL.
    link = restore_link(rt, content["text/plain"], row)
    assert f'href="{link}"' in content["text/html"]
    assert "Merino &lt;Beanie&gt;" in content["text/html"]  # autoescaped
    assert "Merino <Beanie>" in content["text/plain"]
    assert "71.82" in content["text/plain"]
    assert body["custom_args"] == {
        "message_id": str(row["message_id"]),
        "org_id": str(org.org_id),
        "cart_id": str(abandoned["cart_id"]),
    }
    assert sorted(body["categories"]) == ["cart_recovery", "step_1"]
    assert abandoned["email"] not in json.dumps(body["custom_args"])

    assert row["status"] == "sent" and row["sent_at"] is not None
    assert (row["provider"], row["provider_message_id"]) == ("sendgrid", "sg-msg-1")
    assert row["attempts"] == 1
    assert jobs.queue(rt).count == 0


def test_sender_identity_unsubscribe_group_and_one_click_unsubscribe(db, abandoned, rt, recorder):
    sql(
        db,
        "UPDATE app.orgs SET settings = settings || %s WHERE org_id = %s",
        (
            Jsonb(
                {
                    "sender_identities": {
                        "email": {
                            "from_name": "Outfitters",
                            "from_email": "hello@outfitters.example",
                            "reply_to": "care@outfitters.example",
                            "unsubscribe_group_id": 4242,
                        }
                    }
                }
            ),
            abandoned["org"].org_id,
        ),
    )
    burst(rt)

    ((_, body),) = sends_to(recorder, abandoned["email"])
    assert body["from"] == {"email": "hello@outfitters.example", "name": "Outfitters"}
    assert body["reply_to"] == {"email": "care@outfitters.example"}
    assert body["asm"] == {"group_id": 4242}
    unsubscribe = body["headers"]["List-Unsubscribe"]
    assert re.fullmatch(r"<http://testserver/u/[A-Za-z0-9_.\-]+>", unsubscribe)
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = next(c["value"] for c in body["content"] if c["type"] == "text/html")
    assert unsubscribe[1:-1] in html  # the footer link is the same one-click link


def test_sendgrid_dynamic_template_gets_the_data_instead_of_content(db, org, rt, recorder):
    set_timeout(db, org.org_id)
    template_id = "d-" + "ab12" * 8
    make_campaign(
        db,
        org.org_id,
        [
            {
                "channel": "email",
                "delay_seconds": 0,
                "subject": "Still yours",
                "template": template_id,
            }
        ],
    )
    email = f"dyn-{uuid.uuid4().hex[:6]}@example.com"
    cart_id = make_cart(db, org.org_id, email=email)
    scheduler.tick(rt)
    burst(rt)

    ((_, body),) = sends_to(recorder, email)
    assert body["template_id"] == template_id
    assert "content" not in body
    data = body["personalizations"][0]["dynamic_template_data"]
    assert data["subject"] == "Still yours"
    assert [i["title"] for i in data["items"]] == ["Merino <Beanie>", "Trail Socks"]
    row = outbox_rows(db, cart_id)[0]
    assert data["restore_url"] == restore_link(rt, data["restore_url"], row)
    assert data["unsubscribe_url"].startswith("http://testserver/u/")
    assert row["status"] == "sent"


def test_job_that_runs_twice_sends_once(db, abandoned, rt, recorder):
    row = outbox_rows(db, abandoned["cart_id"])[0]
    jobs.enqueue(rt, [row])  # the same job id again: RQ 3 keeps both
    assert jobs.queue(rt).get_job_ids().count(str(row["message_id"])) == 2

    burst(rt)

    assert len(sends_to(recorder, abandoned["email"])) == 1
    assert jobs.send_message(str(row["org_id"]), str(row["message_id"])) == "skipped"
    assert len(sends_to(recorder, abandoned["email"])) == 1
    assert outbox_rows(db, abandoned["cart_id"])[0]["status"] == "sent"


def test_conversion_after_enqueue_cancels_the_send(db, abandoned, rt, recorder):
    assert outbox_rows(db, abandoned["cart_id"])[0]["status"] == "enqueued"
    sql(
        db,
        "UPDATE app.carts SET status = 'converted', converted_at = now() WHERE cart_id = %s",
        (abandoned["cart_id"],),
    )

    burst(rt)

    assert sends_to(recorder, abandoned["email"]) == []
    row = outbox_rows(db, abandoned["cart_id"])[0]
    assert (row["status"], row["reason"]) == ("cancelled", "cart_converted")


def test_suppressed_recipient_is_held(db, org, rt, recorder):
    set_timeout(db, org.org_id)
    make_campaign(db, org.org_id)
    cart_id = make_cart(db, org.org_id, email="Unsub.Me@Example.com")
    sql(
        db,
        "INSERT INTO app.suppressions (org_id, channel, address, reason) "
        "VALUES (%s, 'email', 'unsub.me@example.com', 'unsubscribe')",
        (org.org_id,),
    )

    scheduler.tick(rt)
    burst(rt)

    assert sends_to(recorder, "Unsub.Me@Example.com") == []
    row = outbox_rows(db, cart_id)[0]
    assert (row["status"], row["reason"]) == ("held", "suppressed:unsubscribe")


def test_missing_recipient_is_held(db, abandoned, rt, recorder):
    sql(db, "UPDATE app.outbox SET recipient = NULL WHERE cart_id = %s", (abandoned["cart_id"],))
    burst(rt)
    row = outbox_rows(db, abandoned["cart_id"])[0]
    assert (row["status"], row["reason"]) == ("held", "no_recipient")
    assert recorder.find("POST", SEND_PATH) == []


@pytest.mark.parametrize(
    "template",
    [
        "<p>Hi {{ customer.first_name }</p>",  # syntax error
        "<p>{{ customer.no_such_field }}</p>",  # undefined variable
        "<p>{{ items.__class__.__mro__ }}</p>",  # sandbox violation
        "no_such_template",  # unknown built-in
    ],
)
def test_template_error_holds_the_message(db, org, rt, recorder, template):
    set_timeout(db, org.org_id)
    make_campaign(
        db,
        org.org_id,
        [{"channel": "email", "delay_seconds": 0, "subject": "Hi", "template": template}],
    )
    cart_id = make_cart(db, org.org_id)

    scheduler.tick(rt)
    burst(rt)

    row = outbox_rows(db, cart_id)[0]
    assert row["status"] == "held" and row["reason"].startswith("template_error: ")
    assert recorder.find("POST", SEND_PATH) == []


def test_inline_template_renders_html_and_text(db, org, make_runtime, recorder):
    rt = make_runtime(sendgrid=False)
    set_timeout(db, org.org_id)
    make_campaign(
        db,
        org.org_id,
        [
            {
                "channel": "email",
                "delay_seconds": 0,
                "subject": "{{ items | length }} items",
                "template": '<p>{{ items[0].title }}</p>\n<a href="{{ restore_url }}">back</a>',
            }
        ],
    )
    cart_id = make_cart(db, org.org_id)
    scheduler.tick(rt)
    burst(rt)
    mail = sql(
        db,
        "SELECT m.* FROM app.local_mailbox m JOIN app.outbox o USING "
        "(org_id, message_id) WHERE o.cart_id = %s",
        (cart_id,),
    )[0]
    assert mail["subject"] == "2 items"
    assert "<p>Merino &lt;Beanie&gt;</p>" in mail["body_html"]
    assert mail["body_text"] == "Merino <Beanie> back"


def test_concurrent_ticks_create_no_duplicates(db, org, rt):
    set_timeout(db, org.org_id)
    make_campaign(db, org.org_id)
    carts = [make_cart(db, org.org_id, email=f"c{i}@example.com") for i in range(40)]
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def run():
        try:
            start.wait()
            for _ in range(3):
                scheduler.tick(rt, batch_size=7)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    rows = sql(db, "SELECT * FROM app.outbox WHERE org_id = %s", (org.org_id,))
    assert len(rows) == 2 * len(carts)
    assert len({(r["cart_id"], r["step_index"]) for r in rows}) == len(rows)
    enrolled = sql(
        db, "SELECT count(*) AS n FROM app.enrollments WHERE org_id = %s", (org.org_id,)
    )[0]["n"]
    assert enrolled == len(carts)
    due = sorted(str(r["message_id"]) for r in rows if r["step_index"] == 0)
    assert all(r["status"] == "enqueued" for r in rows if r["step_index"] == 0)
    assert sorted(jobs.queue(rt).get_job_ids()) == due  # each exactly once


def test_local_provider_stores_the_message(db, org, make_runtime, recorder):
    rt = make_runtime(sendgrid=False)
    set_timeout(db, org.org_id)
    make_campaign(db, org.org_id)
    cart_id = make_cart(db, org.org_id, email="local@example.com")

    scheduler.tick(rt)
    burst(rt)

    row = outbox_rows(db, cart_id)[0]
    assert (row["status"], row["provider"]) == ("sent", "local")
    mail = sql(
        db,
        "SELECT * FROM app.local_mailbox WHERE org_id = %s AND message_id = %s",
        (org.org_id, row["message_id"]),
    )
    assert len(mail) == 1
    assert mail[0]["recipient"] == "local@example.com" and mail[0]["channel"] == "email"
    assert mail[0]["subject"].endswith(": still yours")
    link = restore_link(rt, mail[0]["body_text"], row)
    assert link in mail[0]["body_html"]
    assert recorder.find("POST", SEND_PATH) == []


def test_provider_errors_retry_then_fail(db, abandoned, rt, recorder):
    recorder.responses.clear()
    recorder.respond("POST", SEND_PATH, 503, {"errors": [{"message": "try later"}]})
    cart_id = abandoned["cart_id"]

    burst(rt)
    row = outbox_rows(db, cart_id)[0]
    assert (row["status"], row["attempts"]) == ("scheduled", 1)
    assert row["reason"].startswith("retry 1: sendgrid 503")
    assert row["due_at"] > row["updated_at"]  # backed off

    for attempt in (2, 3):
        sql(db, "UPDATE app.outbox SET due_at = now() WHERE message_id = %s", (row["message_id"],))
        scheduler.tick(rt)
        burst(rt)
        row = outbox_rows(db, cart_id)[0]
        assert row["attempts"] == attempt

    assert row["status"] == "failed" and "sendgrid 503" in row["reason"]
    assert len(sends_to(recorder, abandoned["email"])) == 3


def test_rejected_request_fails_without_retry(db, abandoned, rt, recorder):
    recorder.responses.clear()
    recorder.respond("POST", SEND_PATH, 400, {"errors": [{"message": "bad from"}]})
    burst(rt)
    row = outbox_rows(db, abandoned["cart_id"])[0]
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert "sendgrid 400" in row["reason"]


def test_lost_job_is_enqueued_again(db, abandoned, rt, recorder):
    row = outbox_rows(db, abandoned["cart_id"])[0]
    message_id = str(row["message_id"])
    sql(
        db,
        "UPDATE app.outbox SET enqueued_at = now() - interval '10 minutes' WHERE message_id = %s",
        (message_id,),
    )
    scheduler.tick(rt)  # the job is still queued: nothing to recover
    assert jobs.queue(rt).get_job_ids() == [message_id]

    jobs.queue(rt).empty()  # Redis loses the job
    sql(
        db,
        "UPDATE app.outbox SET enqueued_at = now() - interval '10 minutes' WHERE message_id = %s",
        (message_id,),
    )
    scheduler.tick(rt)
    assert jobs.queue(rt).get_job_ids() == [message_id]

    burst(rt)
    assert len(sends_to(recorder, abandoned["email"])) == 1
    assert outbox_rows(db, abandoned["cart_id"])[0]["status"] == "sent"


def test_send_interrupted_mid_call_is_failed_not_resent(db, abandoned, rt, recorder):
    row = outbox_rows(db, abandoned["cart_id"])[0]
    message_id = str(row["message_id"])
    # A worker died after marking the row 'sending': did the provider get it? Unknown.
    sql(
        db,
        "UPDATE app.outbox SET status = 'sending', updated_at = now() - interval '1 minute' "
        "WHERE message_id = %s",
        (message_id,),
    )
    scheduler.tick(rt)  # younger than any send can take: still in flight
    assert outbox_rows(db, abandoned["cart_id"])[0]["status"] == "sending"

    sql(
        db,
        "UPDATE app.outbox SET updated_at = now() - interval '1 hour' WHERE message_id = %s",
        (message_id,),
    )
    assert scheduler.tick(rt)["interrupted"] == 1
    settled = outbox_rows(db, abandoned["cart_id"])[0]
    assert settled["status"] == "failed"
    assert settled["reason"].startswith("unknown_outcome")
    burst(rt)
    assert sends_to(recorder, abandoned["email"]) == []


def test_next_month_partition_is_created(db, rt):
    name = sql(
        db,
        "SELECT 'events_' || to_char(date_trunc('month', (now() + interval "
        "'1 month') AT TIME ZONE 'UTC'), 'YYYY_MM') AS n",
    )[0]["n"]
    empty = sql(db, f"SELECT NOT EXISTS (SELECT 1 FROM raw.{name}) AS e")[0]["e"]
    assert empty  # nothing is received in the future
    sql(db, f"DROP TABLE raw.{name}")
    assert scheduler.ensure_partitions(rt, force=True)
    assert sql(db, "SELECT to_regclass(%s) AS t", (f"raw.{name}",))[0]["t"] is not None


def test_run_forever_ticks_until_stopped(db, org, make_runtime):
    rt = make_runtime(sendgrid=False)
    set_timeout(db, org.org_id)
    make_campaign(db, org.org_id)
    cart_id = make_cart(db, org.org_id)
    stop = threading.Event()
    before = _scheduler_passes()
    thread = threading.Thread(target=scheduler.run_forever, args=(rt.settings, stop))
    thread.start()
    try:
        wait_for(lambda: outbox_rows(db, cart_id), message="scheduler never enrolled the cart")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert Queue(rt.settings.queue_name, connection=rt.redis).count == 1
    assert _scheduler_passes() > before


def _scheduler_passes() -> float:
    sample = REGISTRY.get_sample_value("cartrecovery_scheduler_ticks_total", {"outcome": "ok"})
    return sample or 0.0


@pytest.mark.parametrize(
    ("conditions", "cart", "expected"),
    [
        ({}, {"total_price": "5", "currency": "USD"}, True),
        ({"cart_value_min": 10}, {"total_price": "9.99"}, False),
        ({"cart_value_min": 10}, {"total_price": "10.00"}, True),
        ({"cart_value_max": 100}, {"total_price": "100.01"}, False),
        ({"currency": "eur"}, {"total_price": "1", "currency": "EUR"}, True),
        ({"currency": "EUR"}, {"total_price": "1", "currency": None}, False),
        ({"cart_value_min": "not a number"}, {"total_price": "1"}, False),
    ],
)
def test_campaign_conditions(conditions, cart, expected):
    assert campaign_matches(conditions, cart) is expected


def test_concurrent_jobs_for_one_message_send_once(db, abandoned, rt, recorder):
    row = outbox_rows(db, abandoned["cart_id"])[0]
    start = threading.Barrier(4)
    results: list[str] = []

    def run():
        start.wait()
        results.append(jobs.send_message(str(row["org_id"]), str(row["message_id"])))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["sent", "skipped", "skipped", "skipped"]
    assert len(sends_to(recorder, abandoned["email"])) == 1
