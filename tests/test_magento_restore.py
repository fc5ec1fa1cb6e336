"""Magento carts get a restore link: the connection's ``restore_url_template`` filled with the
quote's masked id, else the store's cart page, never the home page; ``/r/`` redirects there."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from conftest import fixture_bytes
from test_magento import MASKED, TOKEN, connect, keys, post, quote_event  # noqa: F401

from cartrecovery import tenancy
from cartrecovery.signed_links import make_token
from integrations.magento.adapter import restore_url

KEY = "test-secret-key"  # conftest's Settings.secret_key


def message_for(db, org_id, cart_id):
    with db.system() as conn:
        campaign_id = conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status) VALUES (%s, 'c', 'active') "
            "RETURNING campaign_id",
            (org_id,),
        ).fetchone()["campaign_id"]
        return conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
            "recipient, due_at, status, sent_at) VALUES (%s, %s, %s, 0, 'email', "
            "'ari.tan@example.com', now(), 'sent', now()) RETURNING message_id",
            (org_id, cart_id, campaign_id),
        ).fetchone()["message_id"]


def follow(client, db, org_id):
    with db.system() as conn:
        cart = conn.execute(
            "SELECT cart_id, restore_url FROM app.carts WHERE org_id = %s AND platform = 'magento'",
            (org_id,),
        ).fetchone()
    token = make_token(KEY, org_id, message_for(db, org_id, cart["cart_id"]), cart["cart_id"])
    response = client.get(f"/r/{token}")
    assert response.status_code == 302
    return cart["restore_url"], urlsplit(response.headers["Location"])


def test_template_with_the_masked_id(client, db, runtime, org, recorder, keys):  # noqa: F811
    template = "https://shop.example.com/cartrecovery/restore?cart={masked_id}&q={quote_id}"
    connect(
        db,
        runtime.encryption_key,
        org.org_id,
        {
            "base_url": recorder.url,
            "integration_token": TOKEN,
            "webhook_public_key_pem": keys[1],
            "restore_url_template": template,
        },
    )
    recorder.respond("POST", "/graphql", 200, fixture_bytes("magento_cart_graphql_response.json"))
    assert post(client, quote_event(), keys[0]).status_code == 200
    stored, target = follow(client, db, org.org_id)
    assert stored == f"https://shop.example.com/cartrecovery/restore?cart={MASKED}&q=412"
    assert (target.netloc, target.path) == ("shop.example.com", "/cartrecovery/restore")
    query = parse_qs(target.query)
    assert query["cart"] == [MASKED] and query["q"] == ["412"]
    assert query["utm_source"] == ["cartrecovery"]


def test_without_a_template_the_link_opens_the_cart_page(client, db, runtime, org, keys):  # noqa: F811
    # No GraphQL (no base_url): the payload's own items; the shop domain names the store.
    connect(db, runtime.encryption_key, org.org_id, {"webhook_public_key_pem": keys[1]})
    assert post(client, quote_event(), keys[0]).status_code == 200
    stored, target = follow(client, db, org.org_id)
    assert stored == "https://magento.example.test/checkout/cart/"
    assert (target.scheme, target.netloc, target.path) == (
        "https",
        "magento.example.test",
        "/checkout/cart/",
    )


def test_restore_url_rules():
    def conn(credentials):
        return tenancy.Connection(
            org_id=None,
            connection_id=None,
            platform="magento",
            shop_domain="m.example",
            secret="s",
            status="active",
            credentials=credentials,
        )

    base = {"base_url": "https://m.example/store/"}
    assert restore_url(conn(base), 7, "abc") == "https://m.example/store/checkout/cart/"
    masked_only = {**base, "restore_url_template": "https://m.example/r/{masked_id}"}
    assert restore_url(conn(masked_only), 7, "a b/c") == "https://m.example/r/a%20b%2Fc"
    # A template whose id the quote lacks, or that is no http(s) URL, falls back to the page.
    assert restore_url(conn(masked_only), 7, None) == "https://m.example/store/checkout/cart/"
    bad = {**base, "restore_url_template": "javascript:alert({quote_id})"}
    assert restore_url(conn(bad), 7, "abc") == "https://m.example/store/checkout/cart/"
    assert restore_url(conn(None), 7, "abc") == "https://m.example/checkout/cart/"
