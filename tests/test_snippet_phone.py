# ruff: noqa: F811
# (fixtures imported from test_browser_snippet are parameters here)
"""The snippet and the phone rule, in a real browser: a number the API refuses (possible but
not one that can be messaged) is dropped, and the cart keeps flowing without it."""

from __future__ import annotations

from test_browser_snippet import (  # noqa: F401
    app_url,
    arrives,
    browser,
    cart_with,
    load,
    pytestmark,
    shop,
    type_and_leave,
)


def test_a_refused_phone_is_dropped_and_the_cart_keeps_flowing(browser, shop, db):
    from selenium.webdriver.common.by import By

    shop_url, org = shop
    load(browser, f"{shop_url}/checkout.html")
    cart_id = browser.execute_script("return window.cartrecovery.cartId()")
    type_and_leave(browser, "billing_email", "drama@example.com", "billing_phone")
    arrives(browser, lambda: cart_with(db, org.org_id, external_id=cart_id))

    # Ofcom's drama range: the right length, never assigned; the API answers 400.
    type_and_leave(browser, "billing_phone", "+44 7700 900123", "billing_first_name")
    # The snippet drops it: later sends (here a corrected email) arrive, without a phone.
    browser.find_element(By.ID, "billing_email").clear()
    type_and_leave(browser, "billing_email", "drama2@example.com", "billing_first_name")
    cart = arrives(browser, lambda: cart_with(db, org.org_id, email="drama2@example.com"))
    assert cart["phone"] is None

    field = browser.find_element(By.ID, "billing_phone")
    field.clear()
    type_and_leave(browser, "billing_phone", "+44 7911 123456", "billing_first_name")
    arrives(browser, lambda: cart_with(db, org.org_id, external_id=cart_id, phone="+447911123456"))
