# ruff: noqa: F811
# (fixtures imported from test_woocommerce are parameters here)
"""WooCommerce's marketing opt-in, where the store exposes one: the order's ``meta_data``
entry named by the connection's ``marketing_opt_in_meta_key`` becomes the customer's
``accepts_marketing`` (WooCommerce itself has none: without the key, nothing is said)."""

from __future__ import annotations

import json

import pytest
from conftest import fixture_bytes
from test_woocommerce import FIXTURE, deliver, store, woo_client  # noqa: F401

from cartrecovery import tenancy

META_KEY = "_cartrec_marketing_opt_in"


def order_with_meta(value) -> bytes:
    payload = json.loads(fixture_bytes(FIXTURE))
    payload["meta_data"] = [*payload["meta_data"], {"id": 1, "key": META_KEY, "value": value}]
    return json.dumps(payload).encode()


def accepts_marketing(db, org_id):
    with db.system() as conn:
        return conn.execute(
            "SELECT cu.accepts_marketing FROM app.carts c "
            "JOIN app.customers cu ON cu.org_id = c.org_id AND cu.customer_id = c.customer_id "
            "WHERE c.org_id = %s AND c.platform = 'woocommerce'",
            (org_id,),
        ).fetchone()["accepts_marketing"]


@pytest.mark.parametrize(("value", "expected"), [("yes", True), ("1", True), ("no", False)])
def test_the_named_meta_entry_is_the_opt_in(  # noqa: F811
    woo_client, db, runtime, store, value, expected
):
    tenancy.set_credentials(
        db,
        runtime.encryption_key,
        store.org_id,
        store.connection_id,
        {"marketing_opt_in_meta_key": META_KEY},
    )
    assert deliver(woo_client, order_with_meta(value)).status_code == 200
    assert accepts_marketing(db, store.org_id) is expected


def test_without_the_key_nothing_is_read(woo_client, db, store):  # noqa: F811
    assert deliver(woo_client, order_with_meta("yes")).status_code == 200
    assert accepts_marketing(db, store.org_id) is None
