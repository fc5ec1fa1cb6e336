"""The thread-pool delivery worker and the SendGrid provider's kept-alive connections.

Real Postgres and Redis, real RQ queues and registries, the real SendGrid SDK pointed at the
recorder (or, where concurrency or connections are the point, at a local HTTP/1.1 server that
counts them). Each test works on a queue of its own and deletes its keys afterwards. No
timing is asserted: concurrency is proven by requests that are answered only once several
are held at the same time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from conftest import remove_queue, wait_for
from psycopg.types.json import Jsonb
from rq import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry

from cartrecovery.consents import record_consent
from cartrecovery.runtime import Runtime
from cartrecovery.settings import with_overrides
from delivery import jobs, scheduler
from delivery.pool_worker import CONCURRENCY_ENV, ThreadPoolWorker, concurrency_from_env
from delivery.providers import OutgoingMessage, ProviderError
from delivery.providers.sendgrid import SendGridProvider
from delivery.worker import run_worker

REPO = Path(__file__).resolve().parents[1]
SEND_PATH = "/v3/mail/send"
STEP = {
    "channel": "email",
    "delay_seconds": 0,
    "subject": "Still yours",
    "template": "cart_reminder",
}


# --- a provider stand-in that counts connections and holds requests -----------------------


class HoldingServer:
    """HTTP/1.1 keep-alive server for POST /v3/mail/send answering 202.

    ``hold(n)``: the next requests wait (up to 30 s) until ``n`` of them are in flight at
    once, or until ``release()``; a sequential client therefore gets 503s, not 202s.
    ``close_after_response``: the server closes each connection after answering."""

    def __init__(self):
        self.requests: list[dict] = []
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.close_after_response = False
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()
        self.quorum = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with server.lock:
                    server.connections += 1

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    if server.quorum and server.in_flight >= server.quorum:
                        server.gate.set()
                passed = server.gate.wait(30)
                with server.lock:
                    server.in_flight -= 1
                    server.requests.append(
                        {
                            "body": body,
                            "headers": dict(self.headers),
                            "status": 202 if passed else 503,
                        }
                    )
                    number = len(server.requests)
                self.send_response(202 if passed else 503)
                self.send_header("X-Message-Id", f"held-{number}")
                self.send_header("Content-Length", "0")
                if server.close_after_response:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hold(self, quorum: int = 0) -> None:
        with self.lock:
            self.quorum = quorum
            self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def message_ids(self) -> list[str]:
        return [json.loads(r["body"])["custom_args"]["message_id"] for r in self.requests]

    def close(self):
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def holding():
    server = HoldingServer()
    yield server
    server.close()


# --- runtimes, orgs, carts ----------------------------------------------------------------


@pytest.fixture()
def make_runtime(settings):
    """Runtimes on a per-test queue sending email through SendGrid at ``base_url``."""
    made: list[Runtime] = []
    queue_name = f"{settings.queue_name}-pool-{uuid.uuid4().hex[:8]}"

    def make(base_url: str) -> Runtime:
        rt = Runtime(
            with_overrides(
                settings,
                queue_name=queue_name,
                sendgrid_api_key="SG.test-key",
                sendgrid_base_url=base_url,
                from_email="shop@example.com",
            )
        )
        jobs.configure(rt)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        remove_queue(rt)
    jobs.configure(None)


def prepare(db, org_id, rt: Runtime, count: int) -> list[str]:
    """``count`` abandoned carts with consented emails and a one-email campaign, abandoned
    and enrolled by the scheduler, their due messages enqueued: one job each on ``rt``'s
    queue. Returns the message ids."""
    tag = uuid.uuid4().hex[:8]
    with db.system() as conn:
        # Quiet hours open all day: these tests are about delivery, not the hour they run at.
        conn.execute(
            "UPDATE app.orgs SET abandonment_timeout_seconds = 60, settings = settings"
            ' || \'{"quiet_hours": {"start": "00:00", "end": "24:00"}}\' '
            "WHERE org_id = %s",
            (org_id,),
        )
        conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status, trigger_conditions, "
            "sequence_steps) VALUES (%s, %s, 'active', '{}', %s)",
            (org_id, f"c-{tag}", Jsonb([STEP])),
        )
        for n in range(count):
            email = f"buyer-{tag}-{n}@example.com"
            record_consent(
                conn, org_id, channel="email", address=email, status="granted", source="checkout"
            )
            conn.execute(
                "INSERT INTO app.carts (org_id, platform, external_id, email, currency, "
                "total_price, line_items, restore_url, last_activity_at) VALUES (%s, 'custom',"
                " %s, %s, 'USD', '30.00', %s, 'https://shop.example.com/r', now() - interval "
                "'5 minutes')",
                (
                    org_id,
                    f"{tag}-{n}",
                    email,
                    Jsonb([{"title": "Socks", "quantity": 1, "price": "30.00"}]),
                ),
            )
    scheduler.abandon_and_enroll(rt, limit=count + 1000)
    assert enqueue_due(db, rt, org_id) == count
    with db.system() as conn:
        rows = conn.execute(
            "SELECT o.message_id FROM app.outbox o JOIN app.carts c USING "
            "(org_id, cart_id) WHERE c.external_id LIKE %s",
            (f"{tag}-%",),
        ).fetchall()
    return [str(r["message_id"]) for r in rows]


def enqueue_due(db, rt: Runtime, org_id) -> int:
    """The scheduler's claim-then-enqueue for this org's due rows only: the test database is
    shared with other tests, whose due rows must not land on this test's queue."""
    with db.system() as conn:
        rows = conn.execute(
            "UPDATE app.outbox SET status = 'enqueued', enqueued_at = now(), updated_at = now() "
            "WHERE org_id = %s AND status = 'scheduled' AND due_at <= now() "
            "RETURNING org_id, message_id",
            (org_id,),
        ).fetchall()
    return jobs.enqueue(rt, rows)


def outbox(db, message_ids) -> list[dict]:
    with db.system() as conn:
        return conn.execute(
            "SELECT * FROM app.outbox WHERE message_id = ANY(%s::uuid[])", (list(message_ids),)
        ).fetchall()


def sent_ids(recorder) -> list[str]:
    return [
        json.loads(r["body"])["custom_args"]["message_id"] for r in recorder.find("POST", SEND_PATH)
    ]


def assert_registries_clean(rt: Runtime) -> None:
    """Nothing queued, nothing left 'started' or stuck between dequeue and start, no
    failure, and no worker still registered on the queue."""
    q = jobs.queue(rt)
    assert q.count == 0
    assert StartedJobRegistry(queue=q).get_job_ids() == []
    assert FailedJobRegistry(queue=q).get_job_ids() == []
    assert rt.redis.llen(q.intermediate_queue_key) == 0
    assert ThreadPoolWorker.all(queue=q) == []


# --- the worker ---------------------------------------------------------------------------


def test_every_due_message_is_sent_exactly_once(db, org, make_runtime, recorder):
    recorder.respond("POST", SEND_PATH, 202, b"", {"X-Message-Id": "sg-1"})
    rt = make_runtime(recorder.url)
    message_ids = prepare(db, org.org_id, rt, 50)

    assert run_worker(rt.settings, burst=True, concurrency=8) is True

    sent = sent_ids(recorder)
    assert len(sent) == 50 and set(sent) == set(message_ids)
    rows = outbox(db, message_ids)
    assert {(r["status"], r["attempts"], r["provider"]) for r in rows} == {("sent", 1, "sendgrid")}
    request = recorder.find("POST", SEND_PATH)[0]
    assert request["headers"]["Authorization"] == "Bearer SG.test-key"
    assert_registries_clean(rt)
    # Nothing left to do: a second burst takes no job and sends nothing.
    assert run_worker(rt.settings, burst=True, concurrency=8) is False
    assert len(recorder.find("POST", SEND_PATH)) == 50


def test_sends_run_concurrently_over_kept_alive_connections(db, org, make_runtime, holding):
    rt = make_runtime(holding.url)
    message_ids = prepare(db, org.org_id, rt, 24)
    # The first requests are answered only once 4 are held at the same time; a worker that
    # sent one message at a time would get 503s (and retries) instead.
    holding.hold(quorum=4)

    run_worker(rt.settings, burst=True, concurrency=4)

    assert holding.max_in_flight >= 4
    assert {r["status"] for r in holding.requests} == {202}
    assert sorted(holding.message_ids()) == sorted(message_ids)
    assert {r["status"] for r in outbox(db, message_ids)} == {"sent"}
    # One connection per thread, reused: fewer connections than messages.
    assert holding.connections <= 4
    assert_registries_clean(rt)


def test_a_job_enqueued_several_times_sends_once(db, org, make_runtime, recorder):
    recorder.respond("POST", SEND_PATH, 202, b"", {"X-Message-Id": "sg-1"})
    rt = make_runtime(recorder.url)
    [message_id] = prepare(db, org.org_id, rt, 1)
    [row] = outbox(db, [message_id])
    for _ in range(4):
        jobs.enqueue(rt, [row])  # RQ 3 keeps every copy: five jobs for one message
    assert jobs.queue(rt).get_job_ids().count(message_id) == 5

    run_worker(rt.settings, burst=True, concurrency=5)

    assert sent_ids(recorder) == [message_id]
    [row] = outbox(db, [message_id])
    assert (row["status"], row["attempts"]) == ("sent", 1)
    assert_registries_clean(rt)


def test_provider_failures_are_retried_through_postgres(db, org, make_runtime, recorder):
    recorder.respond("POST", SEND_PATH, 500, {"errors": [{"message": "boom"}]})
    rt = make_runtime(recorder.url)
    message_ids = prepare(db, org.org_id, rt, 10)

    run_worker(rt.settings, burst=True, concurrency=4)

    rows = outbox(db, message_ids)
    assert len(sent_ids(recorder)) == 10
    assert {(r["status"], r["attempts"]) for r in rows} == {("scheduled", 1)}
    assert all(
        r["reason"].startswith("retry 1: sendgrid 500") and r["due_at"] > r["updated_at"]
        for r in rows
    )
    # The job did its work (the row records the retry): RQ holds no failure, nothing started.
    assert_registries_clean(rt)

    # Due again: the scheduler enqueues the rows once more and they go out.
    recorder.responses.clear()
    recorder.respond("POST", SEND_PATH, 202, b"", {"X-Message-Id": "sg-2"})
    with db.system() as conn:
        conn.execute(
            "UPDATE app.outbox SET due_at = now() WHERE message_id = ANY(%s::uuid[])",
            (message_ids,),
        )
    assert enqueue_due(db, rt, org.org_id) == 10
    run_worker(rt.settings, burst=True, concurrency=4)

    rows = outbox(db, message_ids)
    assert {(r["status"], r["attempts"]) for r in rows} == {("sent", 2)}
    assert sorted(sent_ids(recorder)) == sorted(message_ids * 2)
    assert_registries_clean(rt)


def test_a_job_that_raises_is_recorded_as_failed_by_rq(db, org, make_runtime, recorder):
    rt = make_runtime(recorder.url)
    # An org id that is not a uuid: send_message raises (a bug, as far as RQ knows).
    jobs.enqueue(rt, [{"org_id": "not-a-uuid", "message_id": str(uuid.uuid4())}])
    message_ids = prepare(db, org.org_id, rt, 3)
    recorder.respond("POST", SEND_PATH, 202, b"", {"X-Message-Id": "sg-1"})

    run_worker(rt.settings, burst=True, concurrency=2)

    q = jobs.queue(rt)
    assert len(FailedJobRegistry(queue=q).get_job_ids()) == 1
    assert StartedJobRegistry(queue=q).get_job_ids() == []
    assert q.count == 0 and rt.redis.llen(q.intermediate_queue_key) == 0
    assert {r["status"] for r in outbox(db, message_ids)} == {"sent"}


def test_warm_shutdown_finishes_in_flight_sends_and_leaves_the_rest_queued(
    db, org, make_runtime, holding, settings
):
    rt = make_runtime(holding.url)
    message_ids = prepare(db, org.org_id, rt, 12)
    holding.hold()  # every request waits until released
    s = rt.settings
    env = {
        **os.environ,
        "DATABASE_URL": s.database_url,
        "REDIS_URL": s.redis_url,
        "CARTRECOVERY_QUEUE": s.queue_name,
        "SENDGRID_API_KEY": s.sendgrid_api_key,
        "SENDGRID_BASE_URL": s.sendgrid_base_url,
        "FROM_EMAIL": s.from_email,
        "APP_URL": s.app_url,
        "SECRET_KEY": s.secret_key,
        CONCURRENCY_ENV: "3",
    }
    code = (
        "from cartrecovery.settings import Settings\n"
        "from delivery.worker import run_worker\n"
        "run_worker(Settings.from_env())\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: holding.in_flight == 3, message="three sends in flight")
        proc.send_signal(signal.SIGTERM)
        # The worker records the stop request in Redis when it gets the signal.
        wait_for(
            lambda: any(
                w.shutdown_requested_date for w in ThreadPoolWorker.all(queue=jobs.queue(rt))
            ),
            message="stop requested",
        )
        holding.release()
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output

    rows = {str(r["message_id"]): r for r in outbox(db, message_ids)}
    sent = holding.message_ids()
    assert len(sent) == 3 and all(rows[m]["status"] == "sent" for m in sent)
    rest = set(message_ids) - set(sent)
    assert {rows[m]["status"] for m in rest} == {"enqueued"}
    q = jobs.queue(rt)
    assert set(q.get_job_ids()) == rest  # not lost: still queued for the next worker
    assert StartedJobRegistry(queue=q).get_job_ids() == []
    assert rt.redis.llen(q.intermediate_queue_key) == 0
    assert ThreadPoolWorker.all(queue=q) == []


def test_concurrency_setting(monkeypatch):
    monkeypatch.delenv(CONCURRENCY_ENV, raising=False)
    assert concurrency_from_env() == 16
    monkeypatch.setenv(CONCURRENCY_ENV, "24")
    assert concurrency_from_env() == 24
    for bad in ("0", "-3", "many"):
        monkeypatch.setenv(CONCURRENCY_ENV, bad)
        with pytest.raises(ValueError, match=CONCURRENCY_ENV):
            concurrency_from_env()
    with pytest.raises(ValueError):  # rejected before Redis is contacted
        ThreadPoolWorker([Queue("q", connection=redis.Redis())], concurrency=0)


# --- the SendGrid provider's connections --------------------------------------------------


def _message(n: int) -> OutgoingMessage:
    return OutgoingMessage(
        org_id=str(uuid.uuid4()),
        message_id=f"m-{n}",
        cart_id=str(uuid.uuid4()),
        channel="email",
        recipient=f"jane{n}@example.com",
        subject="Hi",
        html="<p>Hi</p>",
        text="Hi",
        sender_name="Shop",
    )


def test_sendgrid_reuses_one_connection_per_thread(holding):
    provider = SendGridProvider("SG.key", "shop@example.com", holding.url)
    try:
        results = [provider.send(_message(n)) for n in range(3)]
        assert [r.provider_message_id for r in results] == ["held-1", "held-2", "held-3"]
        assert holding.connections == 1

        other = threading.Thread(target=provider.send, args=(_message(3),))
        other.start()
        other.join()
        assert holding.connections == 2  # a thread of its own, a connection of its own
        assert len(holding.requests) == 4
        body = json.loads(holding.requests[0]["body"])
        assert body["custom_args"]["message_id"] == "m-0"
        assert holding.requests[0]["headers"]["Authorization"] == "Bearer SG.key"
    finally:
        provider.close()


def test_sendgrid_opens_a_new_connection_when_the_server_closed_it(holding):
    holding.close_after_response = True
    provider = SendGridProvider("SG.key", "shop@example.com", holding.url)
    try:
        for n in range(3):
            assert provider.send(_message(n)).provider_message_id == f"held-{n + 1}"
        assert holding.connections == 3
        assert len(holding.requests) == 3  # each message sent once, none repeated
    finally:
        provider.close()


def test_sendgrid_error_answers_and_unreachable_server(holding, recorder):
    recorder.respond("POST", SEND_PATH, 429, {"errors": [{"message": "slow down"}]})
    provider = SendGridProvider("SG.key", "shop@example.com", recorder.url)
    with pytest.raises(ProviderError, match="sendgrid 429") as error:
        provider.send(_message(0))
    assert error.value.retryable
    recorder.responses.clear()
    recorder.respond("POST", SEND_PATH, 400, {"errors": [{"message": "bad"}]})
    with pytest.raises(ProviderError, match="sendgrid 400") as error:
        provider.send(_message(1))
    assert not error.value.retryable

    url = holding.url
    holding.close()  # nobody listens there any more
    unreachable = SendGridProvider("SG.key", "shop@example.com", url)
    with pytest.raises(ProviderError, match="unreachable") as error:
        unreachable.send(_message(2))
    assert error.value.retryable
