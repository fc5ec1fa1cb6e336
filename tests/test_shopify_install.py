"""The one-step Shopify install against a stand-in store (recording server): authorize
redirect → callback (HMAC, state) → token exchange → webhook subscriptions through the
GraphQL Admin API → first sync queued and run; a second install changes only the token;
forged, replayed, foreign or cross-browser callbacks are refused and store nothing; the
token never reaches the browser or the logs; uninstall disconnects; shopify.app.toml."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import tomllib
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from click.testing import CliRunner
from conftest import fixture_bytes, remove_queue, shopify_hmac
from rq import Queue
from rq.job import Job
from shopify_standin import ShopifyStandIn, classic_url, graphql_checkout, graphql_order

from cartrecovery import tenancy
from cartrecovery.settings import with_overrides
from cli.main import main
from ingest.app import create_app
from ingest.shopify_install import CALLBACK_PATH, STATE_COOKIE
from integrations import jobs
from integrations.shopify.adapter import PRIVACY_TOPICS, TOPIC_PATHS

API_KEY = "test-client-id"
API_SECRET = "shpss_test_app_secret"
TOKEN = "shpat_offline_token_0123456789"
DASHBOARD = "https://dash.example"


@pytest.fixture()
def install_app(settings, recorder):
    app = create_app(
        with_overrides(
            settings,
            shopify_api_key=API_KEY,
            shopify_api_secret=API_SECRET,
            shopify_api_base_url=recorder.url,
            dashboard_url=DASHBOARD,
            queue_name=f"cr-test-install-{uuid.uuid4().hex[:8]}",
        )
    )
    app.config.update(TESTING=True)
    rt = app.extensions["cartrecovery"]
    jobs.configure(rt)
    yield app
    jobs.configure(None)
    remove_queue(rt)


@pytest.fixture()
def standin(recorder):
    return ShopifyStandIn(recorder, token=TOKEN)


@pytest.fixture()
def shop():
    return f"store-{uuid.uuid4().hex[:8]}.myshopify.com"


def signed(params: dict, secret: str = API_SECRET) -> dict:
    """``params`` with Shopify's ``hmac``: sorted name=value pairs joined by &, hex."""
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return {**params, "hmac": digest}


def start(client, shop: str, **extra) -> dict:
    """GET install; the authorize redirect's query."""
    res = client.get("/auth/shopify/install?" + urlencode({"shop": shop, **extra}))
    assert res.status_code == 302, res.get_data(as_text=True)
    target = urlsplit(res.headers["Location"])
    assert (target.scheme, target.netloc, target.path) == ("https", shop, "/admin/oauth/authorize")
    return {k: v[0] for k, v in parse_qs(target.query).items()}


def callback(client, shop: str, state: str, code: str = "auth-code-1", **override):
    params = {
        "code": code,
        "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvdGVzdA",
        "shop": shop,
        "state": state,
        "timestamp": "1765000000",
    }
    query = signed(params) | override
    return client.get("/auth/shopify/callback?" + urlencode(query))


def connections_of(db, shop: str) -> list[dict]:
    with db.system() as conn:
        return conn.execute(
            "SELECT org_id, connection_id, status, credentials_ciphertext "
            "FROM app.connections WHERE platform = 'shopify' AND shop_domain = %s",
            (shop,),
        ).fetchall()


def queued(app) -> list[Job]:
    rt = app.extensions["cartrecovery"]
    q = Queue(rt.settings.queue_name, connection=rt.redis)
    return [Job.fetch(i, connection=rt.redis) for i in q.get_job_ids()]


def test_install_connects_subscribes_and_starts_the_first_sync(
    install_app, standin, recorder, db, shop, caplog
):
    caplog.set_level(logging.DEBUG)
    client = install_app.test_client()
    authorize = start(client, shop)
    assert authorize["client_id"] == API_KEY
    assert authorize["redirect_uri"] == "http://testserver/auth/shopify/callback"
    assert set(authorize["scope"].split(",")) >= {"read_orders", "write_discounts"}
    assert len(authorize["state"]) >= 32

    res = callback(client, shop, authorize["state"])

    # Back to the dashboard: no token in the redirect, the page or the cookies.
    assert res.status_code == 302
    location = res.headers["Location"]
    assert location.startswith(DASHBOARD + "/?") and "shop=" + shop in location
    assert TOKEN not in location and TOKEN not in res.get_data(as_text=True)
    assert all(TOKEN not in v for v in res.headers.getlist("Set-Cookie"))

    # The code was exchanged server to server.
    assert standin.exchanged == [
        {"client_id": API_KEY, "client_secret": API_SECRET, "code": "auth-code-1"}
    ]
    # Stored once, token encrypted, webhooks verified with the app's secret.
    [row] = connections_of(db, shop)
    assert TOKEN.encode() not in bytes(row["credentials_ciphertext"])
    rt = install_app.extensions["cartrecovery"]
    connection = tenancy.get_connection(db, rt.encryption_key, row["connection_id"])
    assert connection.credentials["access_token"] == TOKEN
    assert connection.secret == API_SECRET and connection.status == "active"
    with db.system() as conn:
        org = conn.execute("SELECT name FROM app.orgs WHERE org_id = %s", (row["org_id"],))
        assert org.fetchone()["name"] == shop  # a first install makes the shop's own org

    # Every API topic subscribed (JSON, at APP_URL); privacy topics are app configuration.
    subscribed = {s["topic"]: s for s in standin.subscriptions.values()}
    expected = {t: p for t, p in TOPIC_PATHS.items() if t not in PRIVACY_TOPICS}
    assert set(subscribed) == {t.replace("/", "_").upper() for t in expected}
    for topic, path in expected.items():
        sub = subscribed[topic.replace("/", "_").upper()]
        assert sub["uri"] == f"http://testserver/api/webhooks/shopify/{path}"
        assert sub["format"] == "JSON"
    graphql = [r for r in recorder.requests if r["path"].endswith("/graphql.json")]
    assert all(r["headers"]["X-Shopify-Access-Token"] == TOKEN for r in graphql)

    # The first sync is queued; run it as a worker would.
    [job] = queued(install_app)
    assert job.func_name == "integrations.jobs.first_sync"
    assert job.args[0] == str(row["connection_id"])
    checkout = json.loads(fixture_bytes("shopify_checkouts_create.json"))
    checkout["abandoned_checkout_url"] = classic_url(checkout)
    order = json.loads(fixture_bytes("shopify_orders_create.json"))
    standin.pages = {
        "abandonedCheckouts": [[graphql_checkout(checkout)]],
        "orders": [[graphql_order(order)]],
    }
    summaries = job.perform()
    assert {s["resource"]: s["imported"] for s in summaries} == {"checkouts": 1, "orders": 1}
    with db.tenant(row["org_id"]) as conn:
        cart = conn.execute(
            "SELECT external_id, status FROM app.carts WHERE org_id = %s", (row["org_id"],)
        ).fetchone()
    assert cart == {"external_id": checkout["token"], "status": "converted"}

    assert TOKEN not in caplog.text


def test_second_install_updates_the_token_and_duplicates_nothing(install_app, standin, db, shop):
    client = install_app.test_client()
    assert callback(client, shop, start(client, shop)["state"]).status_code == 302
    [first] = connections_of(db, shop)
    subscriptions = dict(standin.subscriptions)
    creates = len(standin.graphql_calls("Subscribe"))

    standin.token = "shpat_rotated_token"
    res = callback(client, shop, start(client, shop)["state"], code="auth-code-2")
    assert res.status_code == 302
    [again] = connections_of(db, shop)
    assert (again["connection_id"], again["org_id"]) == (first["connection_id"], first["org_id"])
    rt = install_app.extensions["cartrecovery"]
    connection = tenancy.get_connection(db, rt.encryption_key, again["connection_id"])
    assert connection.credentials["access_token"] == "shpat_rotated_token"
    assert standin.subscriptions == subscriptions  # listed first, none created again
    assert len(standin.graphql_calls("Subscribe")) == creates
    assert len(queued(install_app)) == 2  # a sync per install; the second resumes/skips


def test_forged_replayed_foreign_and_cross_browser_callbacks_store_nothing(
    install_app, standin, db, shop
):
    client = install_app.test_client()
    state = start(client, shop)["state"]

    forged = callback(client, shop, state, hmac="0" * 64)
    assert forged.status_code == 401
    assert forged.get_json()["error"]["code"] == "invalid_hmac"
    wrong_secret = client.get(
        "/auth/shopify/callback?"
        + urlencode(signed({"code": "c", "shop": shop, "state": state}, "not-the-secret"))
    )
    assert wrong_secret.status_code == 401

    wrong_state = callback(client, shop, "x" * 43)
    assert wrong_state.status_code == 403
    assert wrong_state.get_json()["error"]["code"] == "invalid_state"

    other_browser = install_app.test_client()  # no state cookie
    assert callback(other_browser, shop, state).status_code == 403

    evil = callback(client, "evil.example", state)
    assert evil.status_code == 400 and evil.get_json()["error"]["code"] == "invalid_shop"
    for bad in ("evil.example", "x.myshopify.com.evil.example", "a/b.myshopify.com", ""):
        res = client.get("/auth/shopify/install?" + urlencode({"shop": bad}))
        assert res.status_code == 400, bad
    assert connections_of(db, "evil.example") == []

    assert standin.exchanged == [] and standin.subscriptions == {}
    assert connections_of(db, shop) == []

    # The genuine callback still works once (the refused ones did not burn the state)…
    cookie = client.get_cookie(STATE_COOKIE, path=CALLBACK_PATH)
    assert cookie is not None
    assert callback(client, shop, state).status_code == 302
    assert client.get_cookie(STATE_COOKIE, path=CALLBACK_PATH) is None  # cleared
    # …and only once: a replay finds no state, even with the browser's cookie put back.
    client.set_cookie(STATE_COOKIE, cookie.value, path=CALLBACK_PATH)
    replay = callback(client, shop, state)
    assert replay.status_code == 403 and replay.get_json()["error"]["code"] == "invalid_state"
    assert len(standin.exchanged) == 1 and len(connections_of(db, shop)) == 1


def test_state_is_bound_to_the_shop_it_was_started_for(install_app, standin, db, shop):
    client = install_app.test_client()
    state = start(client, shop)["state"]
    other = f"other-{uuid.uuid4().hex[:6]}.myshopify.com"
    res = callback(client, other, state)
    assert res.status_code == 403
    assert standin.exchanged == [] and connections_of(db, other) == []


def test_install_without_app_credentials_is_refused(app, shop):
    res = app.test_client().get("/auth/shopify/install?shop=" + shop)
    assert res.status_code == 404
    assert res.get_json()["error"]["code"] == "shopify_app_not_configured"


def test_install_link_names_the_org_and_uninstall_disconnects(
    install_app, standin, db, shop, org, database_url, settings
):
    env = {
        "DATABASE_URL": database_url,
        "APP_URL": settings.app_url,
        "SECRET_KEY": settings.secret_key,
        "ENCRYPTION_KEY": None,
    }
    link = CliRunner().invoke(
        main, ["shopify", "install-link", "--org", str(org.org_id), "--shop", shop], env=env
    )
    assert link.exit_code == 0, link.output
    url = urlsplit(link.stdout.strip())
    hint = parse_qs(url.query)["org"][0]
    client = install_app.test_client()
    state = start(client, shop, org=hint)["state"]
    assert callback(client, shop, state).status_code == 302
    [row] = connections_of(db, shop)
    assert row["org_id"] == org.org_id

    tampered = client.get("/auth/shopify/install?" + urlencode({"shop": shop, "org": hint + "x"}))
    assert tampered.status_code == 400

    # app/uninstalled (signed with the app's secret) disconnects the store…
    body = json.dumps({"id": 1, "domain": shop}).encode()
    res = client.post(
        "/api/webhooks/shopify/app-uninstalled",
        data=body,
        headers={
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Topic": "app/uninstalled",
            "X-Shopify-Hmac-Sha256": shopify_hmac(API_SECRET, body),
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "Content-Type": "application/json",
        },
    )
    assert res.status_code == 200
    [row] = connections_of(db, shop)
    assert row["status"] == "disabled"
    # …and a reinstall (no hint) brings it back in the same org.
    assert callback(client, shop, start(client, shop)["state"]).status_code == 302
    [row] = connections_of(db, shop)
    assert (row["status"], row["org_id"]) == ("active", org.org_id)


def test_app_toml_lists_scopes_redirect_and_privacy_topics(tmp_path):
    out = tmp_path / "shopify.app.toml"
    env = {"APP_URL": "https://recover.example.com", "SHOPIFY_API_KEY": API_KEY}
    result = CliRunner().invoke(main, ["shopify", "app-toml", "-o", str(out)], env=env)
    assert result.exit_code == 0, result.output
    config = tomllib.loads(out.read_text())
    assert config["client_id"] == API_KEY
    assert config["auth"]["redirect_urls"] == ["https://recover.example.com/auth/shopify/callback"]
    assert set(config["access_scopes"]["scopes"].split(",")) >= {"read_orders", "write_discounts"}
    assert config["access_scopes"]["use_legacy_install_flow"] is True
    hooks = {s["compliance_topics"][0]: s["uri"] for s in config["webhooks"]["subscriptions"]}
    assert hooks == {
        t: f"https://recover.example.com/api/webhooks/shopify/{TOPIC_PATHS[t]}"
        for t in PRIVACY_TOPICS
    }
    missing = CliRunner().invoke(main, ["shopify", "app-toml"], env={"SHOPIFY_API_KEY": None})
    assert missing.exit_code == 2


def test_refused_token_exchange_or_subscriptions_answer_502(install_app, standin, db, shop):
    client = install_app.test_client()
    standin.recorder.respond("POST", "/admin/oauth/access_token", 400, {"error": "bad code"})
    res = callback(client, shop, start(client, shop)["state"])
    assert res.status_code == 502
    assert res.get_json()["error"]["code"] == "token_exchange_failed"
    assert connections_of(db, shop) == [] and queued(install_app) == []

    standin.recorder.responses.clear()
    standin._op_Subscribe = lambda variables: (  # Shopify refuses every subscription
        200,
        {"data": {"webhookSubscriptionCreate": {"userErrors": [{"message": "no scope"}]}}},
    )
    res = callback(client, shop, start(client, shop)["state"])
    assert res.status_code == 502
    error = res.get_json()["error"]
    assert error["code"] == "webhook_registration_failed"
    assert "connections verify" in error["message"]
    # The store stays connected (the token is good); no sync is queued: installing again
    # (or `connections verify --fix`, then `sync`) finishes it.
    [row] = connections_of(db, shop)
    assert error["details"]["connection_id"] == str(row["connection_id"])
    assert queued(install_app) == []


def _stores_page(dashboard, monkeypatch, settings, org_id, role: str):
    # The dashboard makes links with the APP_URL and SECRET_KEY the install route checks.
    monkeypatch.setenv("APP_URL", settings.app_url)
    monkeypatch.setenv("SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("SHOPIFY_API_KEY", API_KEY)
    monkeypatch.setenv("SHOPIFY_API_SECRET", API_SECRET)
    at = dashboard(org_id, role)
    at.switch_page("views/stores.py").run(timeout=30)
    assert not at.exception, at.exception
    return at


def test_dashboard_admin_makes_an_install_link_bound_to_the_org(
    install_app, standin, db, shop, org, dashboard, monkeypatch, settings
):
    """An admin enters a shop domain on the Stores page and gets the link the CLI makes; the
    install route accepts it, its state names the org, and the install connects the shop to
    that org. A foreign domain gets an error and no link."""
    at = _stores_page(dashboard, monkeypatch, settings, org.org_id, "admin")
    assert "No store connected yet" in at.info[0].value
    at.text_input(key="install_shop").input("evil.example")
    at.button(key="make_install_link").click().run(timeout=30)
    assert [e.value for e in at.error] == ["shop must be a <name>.myshopify.com domain"]
    assert len(at.code) == 0

    at.text_input(key="install_shop").input(f"  {shop.upper()} ")
    at.button(key="make_install_link").click().run(timeout=30)
    assert not at.exception and not at.error and not at.warning
    [code] = at.code
    link = urlsplit(code.value)
    assert f"{link.scheme}://{link.netloc}" == settings.app_url
    assert link.path == "/auth/shopify/install"
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    assert query["shop"] == shop

    client = install_app.test_client()
    state = start(client, shop, org=query["org"])["state"]
    rt = install_app.extensions["cartrecovery"]
    assert json.loads(rt.redis.get(f"cartrecovery:shopify-oauth:{state}")) == {
        "shop": shop,
        "org_id": str(org.org_id),
    }
    assert callback(client, shop, state).status_code == 302
    [row] = connections_of(db, shop)
    assert (row["org_id"], row["status"]) == (org.org_id, "active")
    with db.tenant(org.org_id) as conn:
        audited = conn.execute(
            "SELECT actor, target FROM app.audit_log WHERE org_id = %s "
            "AND action = 'dashboard.shopify.install_link'",
            (org.org_id,),
        ).fetchall()
    assert [a["target"] for a in audited] == [shop]
    assert audited[0]["actor"].startswith("user:")

    # Without the app's credentials the link is still made, with a warning beside it.
    monkeypatch.delenv("SHOPIFY_API_SECRET")
    at.button(key="make_install_link").click().run(timeout=30)
    assert len(at.code) == 1 and "SHOPIFY_API_SECRET" in at.warning[0].value


@pytest.mark.parametrize("role", ["viewer", "marketer"])
def test_dashboard_shows_no_install_link_control_to_viewers_and_marketers(
    db, org, dashboard, monkeypatch, settings, role
):
    at = _stores_page(dashboard, monkeypatch, settings, org.org_id, role)
    assert [t for t in at.text_input if t.key == "install_shop"] == []
    assert len(at.expander) == 0
    assert [b.key for b in at.button] == ["sign_out"]
    assert "No store connected yet" in at.info[0].value

    # The link is refused below the page too, by the user's role in the database.
    from dashboard import data

    user_id = at.session_state["user"]["user_id"]
    with pytest.raises(PermissionError):
        data.shopify_install_link(
            settings.database_url, str(org.org_id), user_id, "x.myshopify.com"
        )
