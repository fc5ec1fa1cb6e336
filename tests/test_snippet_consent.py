"""The snippet's marketing opt-in checkbox (``data-consent-field``), in a real browser: the
box's state arrives as the customer's ``accepts_marketing``, which the email consent policy
``opt_in`` accepts; unticking it sends false."""

from __future__ import annotations

from test_browser_snippet import (  # noqa: F401
    app_url,
    arrives,
    browser,
    load,
    pytestmark,
    shop,
    type_and_leave,
)

EMAIL = "opt.in@example.com"


def customer(db, org_id):
    with db.system() as conn:
        return conn.execute(
            "SELECT accepts_marketing FROM app.customers WHERE org_id = %s AND email = %s",
            (org_id, EMAIL),
        ).fetchone()


def test_the_opt_in_box_reaches_the_customer(browser, shop, db):  # noqa: F811
    from selenium.webdriver.common.by import By

    shop_url, org = shop
    load(browser, f"{shop_url}/checkout-consent.html")
    type_and_leave(browser, "billing_email", EMAIL, "billing_phone")
    arrives(browser, lambda: customer(db, org.org_id))
    assert customer(db, org.org_id)["accepts_marketing"] is None  # nothing said yet

    browser.find_element(By.ID, "marketing_opt_in").click()
    arrives(browser, lambda: (customer(db, org.org_id) or {}).get("accepts_marketing") is True)

    browser.find_element(By.ID, "marketing_opt_in").click()  # changed their mind
    arrives(browser, lambda: (customer(db, org.org_id) or {}).get("accepts_marketing") is False)
