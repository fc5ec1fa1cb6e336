"""Webhooks that register themselves: `connections add` creates the product's hooks through
BigCommerce's /v3/hooks, WooCommerce's /wp-json/wc/v3/webhooks and Shopify's GraphQL Admin
API, listing first so a second run creates nothing; `connections verify ID [--fix]` and
`GET /api/v1/connections/{id}?webhooks=true` compare registered with expected; Magento
prints the webhooks.xml to paste. The platforms are stand-ins on the recording server."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner
from shopify_standin import ShopifyStandIn

from cli.main import main
from integrations.bigcommerce.adapter import SCOPES
from integrations.shopify.adapter import PRIVACY_TOPICS, TOPIC_PATHS

APP = "http://testserver"


@pytest.fixture()
def cli_env(database_url, settings):
    return {
        "DATABASE_URL": database_url,
        "APP_URL": settings.app_url,
        "SECRET_KEY": settings.secret_key,
        "ENCRYPTION_KEY": None,
    }


def run(env, *args):
    return CliRunner().invoke(main, list(args), env=env)


class BigCommerceHooks:
    """/stores/{hash}/v3/hooks as BigCommerce keeps them."""

    def __init__(self, recorder, store: str, token: str):
        self.recorder, self.base, self.token = recorder, f"/stores/{store}/v3/hooks", token
        self.hooks: dict[int, dict] = {}
        self.next_id = 100
        recorder.handle("GET", self.base, self._list)
        recorder.handle("POST", self.base, self._create)

    def _auth(self, request) -> bool:
        return request["headers"].get("X-Auth-Token") == self.token

    def _list(self, request):
        if not self._auth(request):
            return 401, {"title": "unauthorized"}
        data = list(self.hooks.values())
        return 200, {"data": data, "meta": {"pagination": {"total_pages": 1}}}

    def _create(self, request):
        if not self._auth(request):
            return 401, {"title": "unauthorized"}
        body = json.loads(request["body"])
        self.next_id += 1
        hook = {"id": self.next_id, **body, "store_hash": "x"}
        self.hooks[self.next_id] = hook
        self.recorder.handle("DELETE", f"{self.base}/{self.next_id}", self._delete(self.next_id))
        return 200, {"data": hook}

    def _delete(self, hook_id):
        def handler(request):
            return (200, {"data": self.hooks.pop(hook_id)}) if hook_id in self.hooks else (404, {})

        return handler

    def posts(self):
        return self.recorder.find("POST", self.base)


class WooCommerceWebhooks:
    PATH = "/wp-json/wc/v3/webhooks"

    def __init__(self, recorder):
        self.recorder = recorder
        self.hooks: dict[int, dict] = {}
        self.next_id = 10
        recorder.handle("GET", self.PATH, lambda r: (200, list(self.hooks.values())))
        recorder.handle("POST", self.PATH, self._create)

    def _create(self, request):
        body = json.loads(request["body"])
        self.next_id += 1
        hook = {"id": self.next_id, **body}
        hook.pop("secret")  # WooCommerce never shows a webhook's secret back
        self.hooks[self.next_id] = hook
        self.recorder.handle("DELETE", f"{self.PATH}/{self.next_id}", self._delete(self.next_id))
        return 201, hook

    def _delete(self, hook_id):
        def handler(request):
            return (200, self.hooks.pop(hook_id)) if hook_id in self.hooks else (404, {})

        return handler


def test_bigcommerce_hooks_are_created_once_and_verify_fix_repairs(cli_env, org, recorder, client):
    store = uuid.uuid4().hex[:10]
    standin = BigCommerceHooks(recorder, store, "bc-token")
    # A hook of another integration of the merchant: never touched.
    standin.hooks[1] = {
        "id": 1,
        "scope": "store/order/created",
        "destination": "https://erp.example/hook",
        "is_active": True,
        "headers": {},
    }
    args = [
        "connections",
        "add",
        "bigcommerce",
        "--org",
        str(org.org_id),
        "--shop-domain",
        store,
        "--secret",
        "hook-secret-1",
        "--access-token",
        "bc-token",
        "--api-base-url",
        recorder.url,
        "--json",
    ]
    first = run(cli_env, *args)
    assert first.exit_code == 0, first.output
    body = json.loads(first.stdout)
    assert body["webhooks"]["ok"] is True and len(body["webhooks"]["created"]) == len(SCOPES)
    ours = [h for h in standin.hooks.values() if h["destination"].startswith(APP)]
    assert sorted(h["scope"] for h in ours) == sorted(SCOPES)
    for hook in ours:
        assert hook["destination"] == f"{APP}/api/webhooks/bigcommerce"
        assert hook["is_active"] is True
        assert hook["headers"] == {"X-Cartrec-Hook-Token": "hook-secret-1"}
    posts = len(standin.posts())

    again = run(cli_env, *args)  # the same store added again: listed, nothing created
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["webhooks"]["created"] == []
    assert len(standin.posts()) == posts and len(standin.hooks) == len(SCOPES) + 1
    cid = body["connection_id"]

    # The merchant deletes one of ours and BigCommerce deactivates another.
    victim = next(h for h in ours if h["scope"] == "store/cart/abandoned")
    del standin.hooks[victim["id"]]
    sleepy = next(h for h in ours if h["scope"] == "store/order/created")
    standin.hooks[sleepy["id"]]["is_active"] = False

    checked = run(cli_env, "connections", "verify", cid)
    assert checked.exit_code == 1
    assert "MISSING store/cart/abandoned" in checked.stdout
    assert "INACTIVE store/order/created" in checked.stdout
    api = client.get(f"/api/v1/connections/{cid}?webhooks=true", headers=org.headers)
    assert api.status_code == 200
    block = api.get_json()["webhooks"]
    assert block["managed"] is True and block["ok"] is False
    assert {h["topic"] for h in block["missing"]} == {
        "store/cart/abandoned",
        "store/order/created",
    }
    assert (
        client.get(f"/api/v1/connections/{cid}", headers=org.headers).get_json().get("webhooks")
        is None
    )  # opt-in: no platform call without the flag

    fixed = run(cli_env, "connections", "verify", cid, "--fix", "--json")
    assert fixed.exit_code == 0, fixed.output
    result = json.loads(fixed.stdout)
    assert result["ok"] is True
    assert {h["topic"] for h in result["created"]} == {
        "store/cart/abandoned",
        "store/order/created",
    }
    assert [h["id"] for h in result["deleted"]] == [str(sleepy["id"])]
    assert 1 in standin.hooks  # the other integration's hook is still there
    assert run(cli_env, "connections", "verify", cid).exit_code == 0
    block = client.get(f"/api/v1/connections/{cid}?webhooks=1", headers=org.headers).get_json()
    assert block["webhooks"]["ok"] is True
    bad = client.get(f"/api/v1/connections/{cid}?webhooks=maybe", headers=org.headers)
    assert bad.status_code == 400


def test_bigcommerce_rotated_secret_is_repaired(cli_env, org, recorder):
    store = uuid.uuid4().hex[:10]
    standin = BigCommerceHooks(recorder, store, "tok")
    common = ["--org", str(org.org_id), "--shop-domain", store, "--access-token", "tok"]
    common += ["--api-base-url", recorder.url, "--json"]
    run(cli_env, "connections", "add", "bigcommerce", *common, "--secret", "old-secret-1")
    again = run(cli_env, "connections", "add", "bigcommerce", *common, "--secret", "new-secret-2")
    result = json.loads(again.stdout)["webhooks"]
    # Hooks carrying the old token would be refused: they are replaced.
    assert len(result["deleted"]) == len(SCOPES) and len(result["created"]) == len(SCOPES)
    tokens = {h["headers"]["X-Cartrec-Hook-Token"] for h in standin.hooks.values()}
    assert tokens == {"new-secret-2"}


def test_woocommerce_order_webhooks_are_created_once(cli_env, org, recorder):
    standin = WooCommerceWebhooks(recorder)
    args = [
        "connections",
        "add",
        "woocommerce",
        "--org",
        str(org.org_id),
        "--shop-domain",
        f"https://{uuid.uuid4().hex[:8]}.shop.example/",
        "--consumer-key",
        "ck_1",
        "--consumer-secret",
        "cs_1",
        "--api-base-url",
        recorder.url,
        "--json",
    ]
    first = run(cli_env, *args)
    assert first.exit_code == 0, first.output
    body = json.loads(first.stdout)
    secret = body["secret"]  # generated: the one WooCommerce signs with
    posts = recorder.find("POST", WooCommerceWebhooks.PATH)
    assert sorted(json.loads(p["body"])["topic"] for p in posts) == [
        "order.created",
        "order.updated",
    ]
    for post in posts:
        sent = json.loads(post["body"])
        assert sent["delivery_url"] == f"{APP}/api/webhooks/woocommerce"
        assert sent["secret"] == secret and sent["status"] == "active"
        assert post["headers"]["Authorization"].startswith("Basic ")

    again = run(cli_env, *args[:-1], "--secret", secret, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["webhooks"]["created"] == []
    assert len(recorder.find("POST", WooCommerceWebhooks.PATH)) == 2
    assert len(standin.hooks) == 2

    # WooCommerce disabled one after failed deliveries: verify --fix makes it again.
    hook_id = next(iter(standin.hooks))
    standin.hooks[hook_id]["status"] = "disabled"
    cid = body["connection_id"]
    assert run(cli_env, "connections", "verify", cid).exit_code == 1
    assert run(cli_env, "connections", "verify", cid, "--fix").exit_code == 0
    assert hook_id not in standin.hooks and len(standin.hooks) == 2
    assert all(h["status"] == "active" for h in standin.hooks.values())


def test_shopify_connection_with_a_token_subscribes_and_verify_fix_repairs(cli_env, org, recorder):
    standin = ShopifyStandIn(recorder, token="shpat_cli")
    shop = f"cli-{uuid.uuid4().hex[:8]}.myshopify.com"
    args = ["connections", "add", "shopify", "--org", str(org.org_id), "--shop-domain", shop]
    args += ["--secret", "app-secret", "--access-token", "shpat_cli"]
    args += ["--api-base-url", recorder.url, "--json"]
    first = run(cli_env, *args)
    assert first.exit_code == 0, first.output
    expected = {t.replace("/", "_").upper() for t in TOPIC_PATHS if t not in PRIVACY_TOPICS}
    assert {s["topic"] for s in standin.subscriptions.values()} == expected
    assert run(cli_env, *args).exit_code == 0
    assert len(standin.subscriptions) == len(expected)

    cid = json.loads(first.stdout)["connection_id"]
    gone = next(s for s in standin.subscriptions.values() if s["topic"] == "ORDERS_CREATE")
    del standin.subscriptions[gone["id"]]
    stale = {"id": "gid://shopify/WebhookSubscription/1", "topic": "ORDERS_CREATE"}
    stale |= {"uri": f"{APP}/api/webhooks/shopify/old-path", "format": "JSON"}
    standin.subscriptions[stale["id"]] = stale
    checked = run(cli_env, "connections", "verify", cid)
    assert checked.exit_code == 1 and "MISSING orders/create" in checked.stdout
    assert "STALE" in checked.stdout
    assert run(cli_env, "connections", "verify", cid, "--fix").exit_code == 0
    assert {s["topic"] for s in standin.subscriptions.values()} == expected
    assert stale["id"] not in standin.subscriptions


def test_registration_failure_keeps_the_connection_and_says_how_to_repair(cli_env, org, recorder):
    store = uuid.uuid4().hex[:10]
    BigCommerceHooks(recorder, store, "right-token")
    args = ["connections", "add", "bigcommerce", "--org", str(org.org_id)]
    args += ["--shop-domain", store, "--access-token", "wrong-token"]
    args += ["--api-base-url", recorder.url, "--json"]
    result = CliRunner().invoke(main, args, env=cli_env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert "401" in body["webhooks"]["error"]
    assert "connections verify" in result.stderr
    assert run(cli_env, "connections", "verify", body["connection_id"]).exit_code == 1


def test_magento_prints_the_webhooks_xml_to_paste(cli_env, org):
    args = ["connections", "add", "magento", "--org", str(org.org_id)]
    args += ["--shop-domain", "shop.example.com", "--secret", "magento-token-1", "--json"]
    result = run(cli_env, *args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    root = ET.fromstring(body["webhook_config"].encode())
    methods = {m.get("name"): m for m in root.findall("method")}
    assert set(methods) == {"observer.sales_quote_save_after", "observer.sales_order_place_after"}
    for method in methods.values():
        assert method.get("type") == "after"
        hook = method.find("hooks/batch/hook")
        assert hook.get("url") == f"{APP}/api/webhooks/custom/{body['connection_id']}"
        assert hook.get("required") == "false"
        header = hook.find("headers/header")
        assert (header.get("name"), header.text) == ("X-Cartrec-Hook-Token", "magento-token-1")
    text = run(cli_env, *args[:-1])
    assert "<config" in text.stdout
    verify = run(cli_env, "connections", "verify", body["connection_id"])
    assert verify.exit_code == 0 and "observer.sales_order_place_after" in verify.stdout


def test_dashboard_stores_page_shows_the_webhook_status(
    monkeypatch, database_url, settings, db, runtime, org, recorder
):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from cartrecovery import tenancy

    store = uuid.uuid4().hex[:10]
    standin = BigCommerceHooks(recorder, store, "tok")
    creds = {"access_token": "tok", "api_base_url": recorder.url}
    tenancy.add_connection(
        db, runtime.encryption_key, org.org_id, "bigcommerce", store, "hook-secret", creds
    )
    for env, value in {
        "DATABASE_URL": database_url,
        "CARTRECOVERY_ORG": str(org.org_id),
        "APP_URL": settings.app_url,
        "SECRET_KEY": settings.secret_key,
    }.items():
        monkeypatch.setenv(env, value)
    monkeypatch.delenv("ENCRYPTION_KEY", raising=False)
    from cartrecovery import users

    email = f"stores-{uuid.uuid4().hex[:8]}@example.com"
    users.create_user(db, email, org.org_id, "admin", "stores page password")
    app = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=30).run()
    at.text_input(key="sign_in_email").input(email)
    at.text_input(key="sign_in_password").input("stores page password")
    at.button[0].click().run(timeout=30)
    at.switch_page("views/stores.py").run(timeout=30)
    assert not at.exception
    assert recorder.find("GET", standin.base) == []  # nothing asked before the button
    at.button(key="check_webhooks").click().run(timeout=30)
    assert [w.value for w in at.warning] == [
        f"Webhooks need repair: run `cartrecovery connections verify "
        f"{at.selectbox(key='store').value} --fix`."
    ]
    registered = at.dataframe[1].value
    assert set(registered["registered"]) == {"MISSING"} and len(registered) == len(SCOPES)

    from integrations import webhooks

    connection = tenancy.get_connection(
        db, runtime.encryption_key, uuid.UUID(at.selectbox(key="store").value)
    )
    webhooks.ensure(webhooks.registrar_for(connection, settings.app_url))
    at.button(key="check_webhooks").click().run(timeout=30)
    assert [s.value for s in at.success] == ["All expected webhooks are registered."]
    assert set(at.dataframe[1].value["registered"]) == {"yes"}
