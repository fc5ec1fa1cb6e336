"""Adapter benchmark: verify + parse + normalize cost per event, per platform and payload, as a
ratio to ``json.loads`` of the same body measured in the same run. Goal: no adapter costs more
than 5x ``json.loads`` of its payload.

Each measurement calls the adapter exactly as the dispatcher does for one request (a fresh
adapter, ``verify`` then ``parse`` with an ``InboundRequest`` of the fixture body and headers),
without HTTP, without the database (``parse`` builds the canonical cart/order, validated by
pydantic; applying it is the database's work, measured by bench/ingest.py) and without the
network: BigCommerce and Magento get a fake API that returns the already-parsed fixture
object (``bigcommerce_cart_v3.json``, ``magento_cart_graphql_response.json``, an invented v2
order), so the adapter itself is measured, not a store API. Because the real fetch also
decodes that answer, a second ratio compares against ``json.loads`` of body + fetched object.

Timing: ``timeit`` with a fixed number of calls per sample, best of ``--repeat`` samples.
Run: ``.venv/bin/python bench/adapters.py`` (``--no-write`` to print only). Rewrites only the
"## Adapters" section of docs/BENCHMARKS.md. Exit status 0 even when a goal is missed.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import subprocess
import sys
import time
import timeit
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402
from werkzeug.datastructures import Headers  # noqa: E402

from cartrecovery import carts as state  # noqa: E402
from cartrecovery.tenancy import Connection  # noqa: E402
from ingest.adapters import base, registry  # noqa: E402

DOCS = REPO / "docs" / "BENCHMARKS.md"
FIXTURES = REPO.parent / "shared" / "fixtures"
GOAL = 5.0
HEADING = "## Adapters"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


VECTORS = json.loads(fixture("headers_and_signatures.json"))
V2_ORDER = {
    "id": 10457, "cart_id": "3c9f2a1e-7b4d-4e8a-9c1f-5a6b7c8d9e0f", "status_id": 11,
    "status": "Awaiting Fulfillment", "payment_status": "captured", "total_inc_tax": "129.5000",
    "currency_code": "USD", "date_created": "Sat, 14 Mar 2026 17:10:12 +0000",
    "billing_address": {"email": "sam.lee@example.com", "first_name": "Sam"},
}


@dataclass
class Case:
    platform: str
    payload: str
    body: bytes
    make: Callable[[], base.Adapter]
    request: base.InboundRequest
    connection: Connection
    fetched: bytes = b""  # the API answer the fake fetch stands for (parsed once, up front)


def connection(platform_name: str, shop: str, secret: str, credentials=None) -> Connection:
    return Connection(org_id=uuid.uuid4(), connection_id=uuid.uuid4(), platform=platform_name,
                      shop_domain=shop, secret=secret, status="active", credentials=credentials)


def request(body: bytes, headers: dict, topic: str | None = None, query=None):
    return base.InboundRequest(body=body, headers=Headers(headers), url="http://bench/",
                               topic=topic, query=query or {})


def shopify_cases() -> list[Case]:
    from ingest.adapters.shopify import ShopifyAdapter

    vec = VECTORS["shopify"]
    conn = connection("shopify", "example-outfitters.myshopify.com", vec["client_secret"])
    cases = []
    for name, topic in (("shopify_checkouts_create.json", "checkouts/create"),
                        ("shopify_checkouts_update_completed.json", "checkouts/update"),
                        ("shopify_carts_update.json", "carts/update"),
                        ("shopify_orders_create.json", "orders/create")):
        if name not in vec["deliveries"]:
            continue
        body = fixture(name)
        cases.append(Case("shopify", name, body, ShopifyAdapter,
                          request(body, vec["deliveries"][name]["headers"], topic), conn))
    return cases


def woocommerce_cases() -> list[Case]:
    from ingest.adapters.woocommerce import WooCommerceAdapter

    vec = VECTORS["woocommerce"]
    name = "woocommerce_order_created.json"
    body = fixture(name)
    conn = connection("woocommerce", "shop.example.com", vec["secret"])
    return [Case("woocommerce", name, body, WooCommerceAdapter,
                 request(body, vec["deliveries"][name]["headers"]), conn)]


class FakeBigCommerceApi:
    def __init__(self):
        self._cart = json.loads(fixture("bigcommerce_cart_v3.json"))["data"]

    def cart(self, cart_id):
        return self._cart

    def order(self, order_id):
        return V2_ORDER


def bigcommerce_cases() -> list[Case]:
    from ingest.adapters.bigcommerce import BigCommerceAdapter

    vec = VECTORS["bigcommerce"]
    token = next(iter(vec["custom_header_set_at_creation"].values()))
    conn = connection("bigcommerce", "x7k2m9q4pd", token,
                      {"access_token": "t", "client_secret": vec["client_secret"],
                       "signature_tolerance_seconds": 0})
    api = FakeBigCommerceApi()
    cases = []
    for name, headers in vec["deliveries"].items():
        body = fixture(name)
        fetched = (fixture("bigcommerce_cart_v3.json") if "cart_c" in name or "cart_u" in name
                   or "cart_a" in name else json.dumps(V2_ORDER).encode())
        cases.append(Case("bigcommerce", name, body,
                          lambda: BigCommerceAdapter(api_factory=lambda c: api),
                          request(body, headers["headers"]), conn, fetched))
    return cases


class FakeGraphQL:
    def __init__(self):
        self._cart = json.loads(fixture("magento_cart_graphql_response.json"))["data"]["cart"]

    def cart(self, masked_id):
        return self._cart


def magento_cases() -> list[Case]:
    from ingest.adapters.magento import SIGNATURE_HEADER, MagentoAdapter

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    conn = connection("magento", "shop.example.com", "unused-token",
                      {"base_url": "https://shop.example.com", "webhook_public_key_pem": pem})
    gql = FakeGraphQL()
    quote = {"eventName": "observer.checkout_cart_save_after", "data": {"quote": {
        "entity_id": "412", "masked_id": "Qm9rTmFrZWRDYXJ0SWQxMjM0NTY3ODkw",
        "customer_email": "ari.tan@example.com", "quote_currency_code": "USD",
        "updated_at": "2026-03-14 15:22:11", "created_at": "2026-03-14 15:20:00"}}}
    order = {"eventName": "observer.sales_order_place_after", "data": {"order": {
        "entity_id": "90", "increment_id": "000000123", "quote_id": "412",
        "customer_email": "ari.tan@example.com", "grand_total": "93.10",
        "order_currency_code": "USD", "status": "pending", "created_at": "2026-03-14 16:00:00"}}}
    cases = []
    for label, payload, fetched in (
            ("quote save (built here)", quote, fixture("magento_cart_graphql_response.json")),
            ("order place (built here)", order, b"")):
        body = json.dumps(payload).encode()
        signature = private.sign(base64.b64encode(body), padding.PKCS1v15(), hashes.SHA256())
        headers = {SIGNATURE_HEADER: base64.b64encode(signature).decode()}
        cases.append(Case("magento", label, body,
                          lambda: MagentoAdapter(graphql_factory=lambda c: gql),
                          request(body, headers, query={"store": "shop.example.com"}), conn,
                          fetched))
    return cases


def generic_cases() -> list[Case]:
    from ingest.adapters.generic import GenericAdapter, sign

    secret = "bench-generic-secret"
    conn = connection("generic", "bench.custom", secret)
    payload = {"event": "cart_updated", "event_id": "e1", "timestamp": "2026-03-14T15:00:00Z",
               "cart_data": {"cart_id": "c1", "email": "a@example.com", "currency": "USD",
                             "items": [{"product_id": "p1", "title": "Mug", "quantity": 2,
                                        "price": 12.5}]}}
    body = json.dumps(payload).encode()
    # Signed "now" once; the adapter's 300 s tolerance covers the run.
    return [Case("generic", "cart_updated (built here)", body, GenericAdapter,
                 request(body, sign(secret, body)), conn)]


BUILDERS = {"shopify": shopify_cases, "woocommerce": woocommerce_cases,
            "bigcommerce": bigcommerce_cases, "magento": magento_cases,
            "generic": generic_cases}


# --- measuring ---------------------------------------------------------------------------------


def per_call(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Best-of-``repeat`` seconds per call of ``fn``."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


@dataclass
class Row:
    case: Case
    loads: float
    loads_fetched: float
    verify: float
    parse: float
    total: float

    @property
    def ratio(self) -> float:
        return self.total / self.loads

    @property
    def ratio_fetched(self) -> float:
        return self.total / self.loads_fetched


def measure(case: Case, number: int, repeat: int) -> Row:
    adapter = case.make()
    assert adapter.verify(case.request, case.connection), f"{case.payload}: not verified"
    delivery = adapter.parse(case.request, case.connection)
    assert delivery.store, case.payload

    def full():
        a = case.make()
        a.verify(case.request, case.connection)
        return a.parse(case.request, case.connection)

    def verify_only():
        return case.make().verify(case.request, case.connection)

    def parse_only():
        return case.make().parse(case.request, case.connection)

    body, fetched = case.body, case.fetched
    loads = per_call(lambda: json.loads(body), number * 4, repeat)
    loads_fetched = (per_call(lambda: (json.loads(body), json.loads(fetched)), number * 2, repeat)
                     if fetched else loads)
    return Row(case, loads, loads_fetched, per_call(verify_only, number, repeat),
               per_call(parse_only, number, repeat), per_call(full, number, repeat))


def breakdown(number: int, repeat: int) -> list[tuple[str, float]]:
    """What the pieces common to every adapter cost, to explain the ratios."""
    cart_bytes = fixture("bigcommerce_cart_v3.json")
    cart = json.loads(cart_bytes)["data"]
    from cartrecovery.events import find_nul
    from cartrecovery.http_client import load_storable_json
    from ingest.adapters.bigcommerce import BcCart, cart_to_canonical, verify_standard_webhook

    parsed = BcCart.model_validate(cart)
    canonical = cart_to_canonical(parsed, uuid.uuid4()).model_dump()
    body = fixture("bigcommerce_cart_created.json")
    headers = Headers(VECTORS["bigcommerce"]["deliveries"]["bigcommerce_cart_created.json"]
                      ["headers"])
    key = VECTORS["bigcommerce"]["client_secret"].encode()
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key()
    message = base64.b64encode(body)
    signature = private.sign(message, padding.PKCS1v15(), hashes.SHA256())
    order = json.loads(fixture("shopify_orders_create.json"))
    checkout_body = fixture("shopify_checkouts_create.json")
    checkout = json.loads(checkout_body)
    return [
        (f"json.loads, bigcommerce_cart_created.json ({len(body)} B)",
         per_call(lambda: json.loads(body), number * 4, repeat)),
        (f"json.loads, shopify_checkouts_create.json ({len(checkout_body):,} B)",
         per_call(lambda: json.loads(checkout_body), number, repeat)),
        ("ingest.adapters.base.json_object, same body (decode + find_nul walk)",
         per_call(lambda: base.json_object(checkout_body), number, repeat)),
        ("cartrecovery.events.find_nul walk alone, same payload",
         per_call(lambda: find_nul(checkout), number, repeat)),
        ("cartrecovery.http_client.load_storable_json, same body (walk only if needed)",
         per_call(lambda: load_storable_json(checkout_body), number, repeat)),
        ("carts.normalize_phone('+1 415 555 0100') (phonenumbers)",
         per_call(lambda: state.normalize_phone("+1 415 555 0100"), number, repeat)),
        ("json.loads, bigcommerce_cart_v3.json (API answer)",
         per_call(lambda: json.loads(cart_bytes), number * 4, repeat)),
        ("HMAC-SHA256 Standard Webhooks check (BigCommerce)",
         per_call(lambda: verify_standard_webhook(key, headers, body, None, 0), number, repeat)),
        ("RSA-2048 PKCS#1 v1.5 verify of base64(body) (Magento)",
         per_call(lambda: public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256()),
                  number // 4 or 1, repeat)),
        ("pydantic: BcCart.model_validate (v3 cart)",
         per_call(lambda: BcCart.model_validate(cart), number, repeat)),
        ("pydantic: CanonicalCart.model_validate (1 item)",
         per_call(lambda: state.CanonicalCart.model_validate(canonical), number, repeat)),
        ("pydantic: CanonicalOrder (Shopify order fields)",
         per_call(lambda: state.CanonicalOrder(platform="shopify", external_id=str(order["id"]),
                                               email=order.get("email"),
                                               total_price=order.get("total_price"),
                                               currency=order.get("currency")),
                  number, repeat)),
    ]


# --- reporting -----------------------------------------------------------------------------------


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f}"


def machine() -> str:
    import os

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + (" + uncommitted changes" if dirty else "")


def markdown(rows: list[Row], parts: list[tuple[str, float]], number: int, repeat: int,
             analysis: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        HEADING, "",
        f"Measured {now} at commit {commit()} with `.venv/bin/python bench/adapters.py`.",
        "",
        f"- Machine: {machine()}. Single thread, no I/O.",
        "- Per event: a fresh adapter (as the registry makes one per request), `verify` then "
        "`parse` of an `InboundRequest` holding the fixture body and headers; `parse` validates "
        "the payload and builds the canonical cart/order (pydantic). Not included: HTTP, the "
        "database transaction (see \"Ingest\"), the store API call — BigCommerce and Magento "
        "get a fake API returning the already-parsed fixture object, so the adapter is "
        "measured, not the network.",
        f"- `timeit`: best of {repeat} samples of {number} calls (json.loads: more calls per "
        "sample); µs per call. Ratio = adapter / `json.loads(body)` in the same run; "
        "\"ratio (+fetched)\" divides by `json.loads` of the body plus the fetched API answer, "
        "which the real fetch decodes too.",
        "",
        "| platform | payload | body B | json.loads µs | verify µs | parse µs | verify+parse µs "
        "| ratio | ratio (+fetched) | goal ≤ 5x |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fetched = f"{r.ratio_fetched:.1f}x" if r.case.fetched else ""
        verdict = "met" if r.ratio <= GOAL else "**MISSED**"
        lines.append(
            f"| {r.case.platform} | {r.case.payload} | {len(r.case.body):,} | {us(r.loads)} | "
            f"{us(r.verify)} | {us(r.parse)} | {us(r.total)} | {r.ratio:.1f}x | {fetched} | "
            f"{verdict} |")
    lines += ["", "Where the time goes (same run):", "", "| piece | µs per call |", "|---|---|"]
    lines += [f"| {name} | {us(t)} |" for name, t in parts]
    lines += ["", analysis.strip(), ""]
    return "\n".join(lines) + "\n"


ANALYSIS = """
Findings (the goal is a ratio to `json.loads` of the *same body*):

- **Fixed cost per event vs tiny bodies.** BigCommerce callbacks and our Magento/generic
  bodies are ~250–320 B, decoded in ~2 µs, while every adapter does work that does not
  shrink with the body: a signature check (HMAC ~3–4 µs with header lookups), a pydantic
  validation of the platform object and one of the canonical cart/order (`LineItem`s,
  `Decimal` money, email/phone normalisation), and for BigCommerce/Magento the fetched cart.
  The ~17–21 µs BigCommerce events therefore sit at 8–10x the body but ~2–4x the body plus
  the API answer it stands for (the fetched cart is ~1.5 kB); 5x of a 2 µs decode is a floor
  no signed, validated event reaches.
- **BigCommerce, optimised:** the first version spent most of its time in
  `cartrecovery.events.find_nul`, a Python walk over every parsed value (body *and* fetched
  cart) looking for NUL characters / lone surrogates. Text Postgres refuses can only enter
  JSON through `\\u0000`/`\\ud8xx` escapes or raw surrogate bytes, so
  `cartrecovery.http_client.load_storable_json` walks only when the bytes contain one
  (a byte search, not a regex: `re.search` over 4.7 kB cost ~13 µs); store API answers are
  decoded the same way in the client, so the adapter no longer walks the snapshot. Parse time
  went from ~33–58 µs to ~15–18 µs per callback. The rest is pydantic (`BcCart` ~5 µs,
  `CanonicalCart` ~3 µs, the callback ~1.5 µs) and RFC 2822 dates.
- **Magento misses on RSA:** verifying an RSA-2048 PKCS#1 v1.5 signature costs ~16 µs (the
  key is parsed once and cached), 8x a small body's decode on its own; a signature that
  only verifies over the raw body (the documented fallback) pays it twice. Inherent to
  Adobe's public-key scheme.
- **Shopify and WooCommerce meet the goal** (3–4x) since `json_object` decodes through
  `load_storable_json`, which walks the value for NUL/surrogates only when the bytes can
  hold one (it used to cost ~30 µs of a 4.7 kB checkout). What is left: `phonenumbers`
  parsing (~10 µs per phone, in `CanonicalCart` validation) and pydantic's validation of
  the platform model (~6 µs for a checkout).
- **Small bodies miss on a fixed floor:** for the ~250-byte BigCommerce, Magento and generic
  bodies `json.loads` takes ~2 µs, while one HMAC (~3–4 µs) plus building the canonical
  model (~8–10 µs) is a per-event floor that does not shrink with the body: 5x of 2 µs is
  10 µs. Against the body plus the cart the BigCommerce adapter fetches and decodes, it is
  2–4x.
- Skipping pydantic validation (`model_construct`) would cut the canonical-model floor but
  give up the normalisation and the bounds the database relies on, so it was not done.
"""


def replace_section(path: Path, heading: str, text: str) -> None:
    """Replace the section starting at ``heading`` (up to the next ``## ``) or append it;
    every other section (e.g. "Ingest", written by bench/ingest.py) is left as it is."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# Benchmarks\n\nFigures written by the scripts under `bench/`.\n\n" + text)
        return
    lines = path.read_text().splitlines(keepends=True)  # re-read right before writing
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        path.write_text("".join(lines).rstrip("\n") + "\n\n" + text)
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
               len(lines))
    tail = "".join(lines[end:])
    path.write_text("".join(lines[:start]) + text + ("\n" + tail if tail else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="calls per timing sample")
    parser.add_argument("--repeat", type=int, default=7, help="samples; the best is kept")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    installed = registry.adapters()
    started = time.monotonic()
    rows = []
    for name, build in BUILDERS.items():
        if name not in installed:
            print(f"{name}: not installed, skipped", file=sys.stderr)
            continue
        for case in build():
            rows.append(measure(case, args.number, args.repeat))
    parts = breakdown(args.number, args.repeat)
    text = markdown(rows, parts, args.number, args.repeat, ANALYSIS)
    print(text)
    missed = [r for r in rows if r.ratio > GOAL]
    print(f"{len(rows)} payloads, {len(missed)} over {GOAL:g}x json.loads "
          f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
    if not args.no_write:
        replace_section(DOCS, HEADING, text)
        print(f"wrote the {HEADING!r} section of {DOCS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
