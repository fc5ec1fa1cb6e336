"""One registry of store platforms drives the CLI and the connections API alike: the same
platform names (``generic``, with ``custom`` as an alias), the same webhook URL table, the
same credential schema; and the core package does not reach up into the platforms."""

from __future__ import annotations

import ast
import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from integrations import registry
from integrations.generic.adapter import sign
from integrations.shopify.adapter import TOPIC_PATHS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def cli_env(database_url, settings):
    """A CLI run against the test app's database, keys and URL."""
    return {
        "DATABASE_URL": database_url,
        "APP_URL": settings.app_url,
        "SECRET_KEY": settings.secret_key,
        "ENCRYPTION_KEY": None,
    }


def cli_add(env, org, platform: str, *extra: str):
    args = ["connections", "add", platform, "--org", str(org.org_id), "--json"]
    shop = f"{uuid.uuid4().hex[:8]}.shop.example"
    return CliRunner().invoke(main, [*args, "--shop-domain", shop, *extra], env=env)


def event(event_id: str) -> bytes:
    return json.dumps(
        {
            "event": "checkout_started",
            "event_id": event_id,
            "timestamp": "2026-03-14T10:00:00Z",
            "cart_data": {"cart_id": "c-1", "email": "kim@example.com", "currency": "USD"},
        }
    ).encode()


@pytest.mark.parametrize("name", ["generic", "custom", "GENERIC"])
def test_cli_generic_connection_gets_a_url_that_accepts_signed_posts(
    name, cli_env, client, db, org, settings
):
    result = cli_add(cli_env, org, name)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    url = body["webhook_urls"]["events"]
    assert url == f"{settings.app_url}/api/webhooks/custom/{body['connection_id']}"
    with db.system() as conn:
        row = conn.execute(
            "SELECT platform FROM app.connections WHERE connection_id = %s",
            (body["connection_id"],),
        ).fetchone()
    assert row["platform"] == "generic"  # an alias is stored under the platform's name

    payload = event(f"e-{name}")
    path = url.removeprefix(settings.app_url)
    response = client.post(path, data=payload, headers=sign(body["secret"], payload))
    assert response.status_code == 200, response.get_json()
    forged = client.post(path, data=payload, headers=sign("not-the-secret", payload))
    assert forged.status_code == 401


def test_api_takes_the_same_names_as_the_cli(client, org):
    for name in ("generic", "custom"):
        response = client.post(
            "/api/v1/connections",
            headers=org.headers,
            json={"platform": name, "shop_domain": f"{uuid.uuid4().hex[:8]}.example"},
        )
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["platform"] == "generic"
    unknown = client.post(
        "/api/v1/connections",
        headers=org.headers,
        json={"platform": "prestashop", "shop_domain": "x.example"},
    )
    assert unknown.status_code == 400
    assert unknown.get_json()["error"]["details"]["platforms"] == sorted(registry.platforms())


def test_cli_refuses_an_unknown_platform_listing_the_installed_ones(cli_env, org):
    result = cli_add(cli_env, org, "prestashop")
    assert result.exit_code == 2
    for name in ("bigcommerce", "generic", "magento", "shopify", "woocommerce"):
        assert name in result.output


def test_cli_and_api_print_every_shopify_topic(cli_env, client, org, settings):
    result = cli_add(cli_env, org, "shopify", "--secret", "shpss_cli_topics")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert len(body["webhook_urls"]) == 11 == len(TOPIC_PATHS)
    for topic in ("checkouts/delete", "orders/paid", "app/uninstalled"):
        assert topic in body["webhook_urls"]
    api = client.get(f"/api/v1/connections/{body['connection_id']}", headers=org.headers)
    assert api.get_json()["webhook_urls"] == body["webhook_urls"]


@pytest.mark.parametrize("platform", ["woocommerce", "bigcommerce", "magento", "generic"])
def test_cli_and_api_print_the_same_urls_for_every_platform(
    platform, cli_env, client, org, settings
):
    result = cli_add(cli_env, org, platform)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    api = client.get(f"/api/v1/connections/{body['connection_id']}", headers=org.headers)
    assert api.get_json()["webhook_urls"] == body["webhook_urls"]
    assert body["webhook_urls"] == registry.platform(platform).webhook_urls(
        settings.app_url, body["connection_id"]
    )


def test_credentials_follow_the_platform_schema(cli_env, client, db, org, tmp_path):
    before = _connections(db, org)
    refused = client.post(
        "/api/v1/connections",
        headers=org.headers,
        json={
            "platform": "shopify",
            "shop_domain": f"{uuid.uuid4().hex[:8]}.myshopify.com",
            "credentials": {"acess_token": "typo"},
        },
    )
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert error["code"] == "invalid_credentials" and "acess_token" in error["message"]
    assert "access_token" in error["details"]["credentials"]
    bad_url = client.post(
        "/api/v1/connections",
        headers=org.headers,
        json={
            "platform": "woocommerce",
            "shop_domain": "https://wc.example",
            "credentials": {"consumer_key": "ck", "api_base_url": "ftp://wc.example"},
        },
    )
    assert bad_url.status_code == 400 and "http(s)" in bad_url.get_json()["error"]["message"]
    assert _connections(db, org) == before

    cli = cli_add(cli_env, org, "shopify", "--integration-token", "t")
    assert cli.exit_code == 2 and "only for magento" in cli.output
    cli = cli_add(cli_env, org, "magento", "--credentials", '{"token": "a"}')
    assert cli.exit_code == 2 and "not a magento credential" in cli.output
    pem = tmp_path / "key.pem"
    pem.write_text("not a key")
    cli = cli_add(cli_env, org, "magento", "--public-key-file", str(pem))
    assert cli.exit_code == 2 and "PEM" in cli.output
    assert _connections(db, org) == before

    created = cli_add(cli_env, org, "bigcommerce", "--access-token", "tok", "--client-secret", "cs")
    assert created.exit_code == 0, created.output
    cid = json.loads(created.stdout)["connection_id"]
    put = client.put(
        f"/api/v1/connections/{cid}/credentials",
        headers=org.headers,
        json={"credentials": {"consumer_key": "wrong platform"}},
    )
    assert put.status_code == 400 and put.get_json()["error"]["code"] == "invalid_credentials"


def _connections(db, org) -> int:
    with db.system() as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM app.connections WHERE org_id = %s", (org.org_id,)
        ).fetchone()["n"]


def test_core_package_imports_no_platform_or_runtime_code():
    """cartrecovery/ is the lowest layer: only its CLI (the composition root for now) may
    import the platform integrations or the HTTP ingest."""
    offenders = []
    for path in sorted((REPO / "cartrecovery").rglob("*.py")):
        if path.name == "cli.py" or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(REPO)}: {n}"
                for n in names
                if n.split(".")[0] in ("integrations", "ingest")
            ]
    assert offenders == []


def test_a_connection_stored_as_custom_before_the_alias_is_served_by_generic(
    client, db, org, runtime
):
    """Older CLIs stored ``custom`` connections whose signed posts got 404 unknown_store."""
    from cartrecovery import tenancy

    secret = "custom-secret-0123456789"
    cid = tenancy.add_connection(
        db, runtime.encryption_key, org.org_id, "custom", f"{uuid.uuid4().hex[:8]}.ex", secret
    )
    payload = event("e-old-custom")
    response = client.post(
        f"/api/webhooks/custom/{cid}", data=payload, headers=sign(secret, payload)
    )
    assert response.status_code == 200, response.get_json()
    listed = client.get(f"/api/v1/connections/{cid}", headers=org.headers).get_json()
    assert listed["webhook_urls"] == {"events": f"http://testserver/api/webhooks/custom/{cid}"}


PLUGIN = """
from integrations.platform import Credential, Platform
from integrations.generic.adapter import GenericAdapter


class ToyAdapter(GenericAdapter):
    platform = "toyshop"
    webhook_topics = {
        "cart": "/api/webhooks/custom/{connection_id}",
        "order": "/api/webhooks/custom/{connection_id}",
    }


PLATFORM = Platform(
    name="toyshop",
    adapter=ToyAdapter,
    credentials=(Credential("api_key", "Toy API key."),),
    aliases=("toys",),
)
MISNAMED = Platform(name="other", adapter=ToyAdapter)
"""


@pytest.fixture()
def toyshop(tmp_path, monkeypatch):
    """A platform package as pip would leave it: a module and a dist-info folder whose
    entry points name a Platform, one misnamed Platform and a module that fails to import."""
    (tmp_path / "toyshop_platform.py").write_text(PLUGIN)
    (tmp_path / "broken_platform.py").write_text("raise RuntimeError('broken package')\n")
    info = tmp_path / "toyshop_platform-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyshop-platform\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[cartrecovery.adapters]\n"
        "toyshop = toyshop_platform:PLATFORM\n"
        "mismatch = toyshop_platform:MISNAMED\n"
        "broken = broken_platform:PLATFORM\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reload()
    yield registry.platform("toyshop")
    registry.reload()


def test_an_installed_platform_package_is_read_whole_and_bad_ones_skipped(
    toyshop, cli_env, client, org, settings
):
    assert toyshop is not None and toyshop.adapter.__name__ == "ToyAdapter"
    assert registry.resolve("TOYS") == "toyshop"
    assert not {"other", "mismatch", "broken"} & set(registry.platforms())
    assert {"shopify", "generic"} <= set(registry.platforms())  # the built-ins still load

    refused = client.post(
        "/api/v1/connections",
        headers=org.headers,
        json={"platform": "toys", "shop_domain": "t1.example", "credentials": {"token": "x"}},
    )
    assert refused.status_code == 400
    assert refused.get_json()["error"]["details"]["credentials"] == ["api_key"]
    created = client.post(
        "/api/v1/connections",
        headers=org.headers,
        json={"platform": "toys", "shop_domain": "t1.example", "credentials": {"api_key": "k"}},
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["platform"] == "toyshop" and sorted(body["webhook_urls"]) == ["cart", "order"]

    result = cli_add(cli_env, org, "toyshop", "--credentials", '{"api_key": "k2"}')
    assert result.exit_code == 0, result.output
    cli_body = json.loads(result.stdout)
    assert cli_body["webhook_urls"] == toyshop.webhook_urls(
        settings.app_url, cli_body["connection_id"]
    )
    payload = event("e-toy")
    path = cli_body["webhook_urls"]["cart"].removeprefix(settings.app_url)
    response = client.post(path, data=payload, headers=sign(cli_body["secret"], payload))
    assert response.status_code == 200, response.get_json()
    refused_cli = cli_add(cli_env, org, "toyshop", "--access-token", "t")
    assert refused_cli.exit_code == 2 and "only for" in refused_cli.output
