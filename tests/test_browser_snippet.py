"""The tracking snippet in a real browser: headless Chromium loads a sample storefront page
(tests/storefront/) from one origin, the snippet from the app on another, the shopper types
an email and leaves the field, and the cart arrives in app.carts through a real CORS
preflight and a publishable key.

Needs Debian's ``chromium`` and ``chromium-driver`` (CI installs them: .ci/run); skipped,
saying so, only when /usr/bin/chromium is missing. Selenium is given both binaries, so
selenium-manager never downloads anything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import wait_for
from flask import Flask, Response, abort
from werkzeug.serving import make_server

from cartrecovery.publishable_keys import create_publishable_key

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
STOREFRONT = Path(__file__).parent / "storefront"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is not installed (apt-get install chromium chromium-driver)",
)


@contextmanager
def serving(wsgi_app) -> Iterator[str]:
    """Serve ``wsgi_app`` on a free local port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def storefront_app(values: dict[str, str]) -> Flask:
    """The sample shop: pages from tests/storefront with the app URL and key filled in, and
    the WooCommerce Store API cart endpoint."""
    site = Flask("storefront")

    @site.get("/<page>.html")
    def page(page: str):
        path = STOREFRONT / f"{page}.html"
        if not path.is_file():
            abort(404)
        html = path.read_text()
        for name, value in values.items():
            html = html.replace(name, value)
        return Response(html, mimetype="text/html")

    @site.get("/wp-json/wc/store/v1/cart")
    def woocommerce_cart():
        return Response(
            (STOREFRONT / "wc-store-cart.json").read_bytes(), mimetype="application/json"
        )

    return site


@pytest.fixture()
def app_url(app) -> Iterator[str]:
    with serving(app) as url:
        yield url


@pytest.fixture()
def shop(db, org, app_url) -> Iterator[tuple[str, object]]:
    """The storefront, on an origin of its own that the org's publishable key allows."""
    holder: dict[str, str] = {}

    # The key must name the storefront's origin, known only once its server listens.
    def lazy(environ, start_response):
        return holder["app"](environ, start_response)

    with serving(lazy) as shop_url:
        key = create_publishable_key(db, org.org_id, [shop_url])
        holder["app"] = storefront_app({"__APP_URL__": app_url, "__PUBLISHABLE_KEY__": key})
        yield shop_url, org


@pytest.fixture()
def browser(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "1")  # selenium-manager must not fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--no-first-run",
        "--disable-extensions",
        "--disable-sync",
        "--disable-component-update",
        "--disable-default-apps",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingOptions", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def console(driver) -> str:
    try:
        return "\n".join(entry["message"] for entry in driver.get_log("browser"))
    except Exception:  # noqa: BLE001 (only diagnostics)
        return ""


def arrives(driver, condition):
    """wait_for ``condition``; on a timeout, the browser's console says why (CORS, 4xx)."""
    try:
        return wait_for(condition)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; browser console:\n{console(driver)}") from None


def cart_with(db, org_id, **where):
    clauses = " AND ".join(f"{column} = %s" for column in where)
    with db.system() as conn:
        return conn.execute(
            f"SELECT * FROM app.carts WHERE org_id = %s AND platform = 'api' AND {clauses}",
            (org_id, *where.values()),
        ).fetchone()


def load(driver, url: str) -> None:
    """Open ``url`` and wait until the (async) snippet has loaded."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return !!(window.cartrecovery && window.cartrecovery.__loaded)")
    )


def type_and_leave(driver, field_id: str, text: str, next_field_id: str):
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, field_id)
    field.click()
    field.send_keys(text)
    driver.find_element(By.ID, next_field_id).click()  # the shopper moves on: a real blur


def test_email_typed_at_checkout_arrives_with_the_cart(browser, shop, db):
    shop_url, org = shop
    load(browser, f"{shop_url}/checkout.html")
    cart_id = browser.execute_script("return window.cartrecovery.cartId()")
    assert cart_id.startswith("c_")

    type_and_leave(browser, "billing_email", "lena.schmidt@example.com", "billing_phone")
    cart = arrives(browser, lambda: cart_with(db, org.org_id, email="lena.schmidt@example.com"))
    assert cart["external_id"] == cart_id
    assert (cart["currency"], str(cart["total_price"]), cart["item_count"]) == ("USD", "71.82", 3)
    assert [i["sku"] for i in cart["line_items"]] == ["BEANIE-CHAR", "SOCK3-M"]
    assert cart["restore_url"] == "https://example-outfitters.test/cart"

    # The phone, typed with spaces, is sent on its own blur, in international form.
    type_and_leave(browser, "billing_phone", "+49 30 1234 5678", "billing_first_name")
    arrives(browser, lambda: cart_with(db, org.org_id, external_id=cart_id, phone="+493012345678"))

    # Every send is its own event, stored with the publishable key's org.
    with db.system() as conn:
        topics = [
            r["topic"]
            for r in conn.execute(
                "SELECT topic FROM raw.events WHERE org_id = %s AND cart_id = %s "
                "ORDER BY received_at",
                (org.org_id, cart["cart_id"]),
            ).fetchall()
        ]
    assert topics[-2:] == ["checkout_updated", "checkout_updated"]

    # The page reports the order: the cart converts and the next cart gets a new id.
    browser.execute_script(
        "window.cartrecovery.track({currency: 'USD', total_price: '71.82', "
        "order: {order_id: 'order-1001'}})"
    )
    arrives(browser, lambda: cart_with(db, org.org_id, external_id=cart_id, status="converted"))
    assert browser.execute_script("return window.cartrecovery.cartId()") != cart_id


def test_woocommerce_store_api_cart_is_sent_on_blur(browser, shop, db):
    shop_url, org = shop
    load(browser, f"{shop_url}/woocommerce-checkout.html")
    type_and_leave(browser, "billing_email", "kunde@example.de", "billing_first_name")
    cart = arrives(browser, lambda: cart_with(db, org.org_id, email="kunde@example.de"))
    assert (cart["currency"], str(cart["total_price"]), cart["item_count"]) == ("EUR", "65.00", 3)
    first, second = cart["line_items"]
    assert (first["title"], first["price"], first["sku"]) == (
        "Ceramic Pour-Over Set – White",
        "42.02",
        "POUR-SET-WHT",
    )
    assert first["image_url"].endswith("/pour-over-white.jpg")
    assert (second["price"], second["quantity"]) == ("7.44", 2)
    assert cart["restore_url"] == f"{shop_url}/cart/"
