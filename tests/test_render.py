"""Rendering: built-in templates per channel, the context, escaping, and the sandbox."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from markupsafe import Markup

from cartrecovery.rendering import RenderError, build_context, format_money, render
from cartrecovery.settings import Settings
from cartrecovery.signed_links import read_token

SETTINGS = Settings(
    database_url="unused", app_url="https://app.example.test", secret_key="render-test-key"
)
ORG_ID, CART_ID, MESSAGE_ID = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
PLATFORM_URL = "https://shop.example.com/checkouts/abc/recover?key=k1"
ITEMS = [
    {
        "title": "Merino Beanie",
        "variant_title": "Charcoal",
        "quantity": 2,
        "price": "24.00",
        "image_url": "https://cdn.example.com/beanie.jpg",
    },
    {
        "title": "Trail Socks",
        "quantity": 1,
        "price": "23.82",
        "image_url": "https://cdn.example.com/socks.jpg",
    },
]
COUPON = {
    "code": "SAVE-7KQ4M2PXAB",
    "type": "percentage",
    "value": "10",
    "expires_at": datetime(2026, 12, 2, 12, 0, tzinfo=UTC),
}
ORG = {
    "name": "Acme Outfitters",
    "settings": {
        "store_address": "1 Main Street, Springfield",
        "store_url": "https://shop.example.com",
        "sender_identities": {"email": {"from_name": "Acme Team", "from_email": "hi@acme.test"}},
    },
}


def context(channel="email", items=ITEMS, coupon=None, currency="USD", total="71.82", **extra):
    cart = {
        "org_id": ORG_ID,
        "cart_id": CART_ID,
        "currency": currency,
        "total_price": total,
        "line_items": items,
        "restore_url": PLATFORM_URL,
        "email": "ann@example.com",
    }
    message = {"org_id": ORG_ID, "message_id": MESSAGE_ID, "cart_id": CART_ID, "channel": channel}
    return build_context(
        cart,
        ORG,
        {"first_name": "Ann", "last_name": "Lee"},
        "ann@example.com",
        message=message,
        settings=SETTINGS,
        coupon=coupon,
        **extra,
    )


def test_context_has_customer_items_totals_store_and_signed_link():
    ctx = context(coupon=COUPON)
    assert ctx["customer"] == {
        "email": "ann@example.com",
        "first_name": "Ann",
        "last_name": "Lee",
        "name": "Ann Lee",
    }
    beanie = ctx["items"][0]
    assert (beanie["title"], beanie["variant"], beanie["quantity"]) == (
        "Merino Beanie",
        "Charcoal",
        2,
    )
    assert (beanie["price"], beanie["line_total"]) == ("$24.00", "$48.00")
    assert beanie["image"] == "https://cdn.example.com/beanie.jpg"
    assert (ctx["total"], ctx["subtotal"], ctx["currency"], ctx["item_count"]) == (
        "$71.82",
        "$71.82",
        "USD",
        3,
    )
    assert ctx["store"]["name"] == "Acme Outfitters"
    assert ctx["store"]["sender_email"] == "hi@acme.test"
    assert ctx["store"]["address"] == "1 Main Street, Springfield"
    assert ctx["platform_restore_url"] == PLATFORM_URL
    prefix = "https://app.example.test/r/"
    assert ctx["restore_url"].startswith(prefix)
    token = read_token(SETTINGS.secret_key, ctx["restore_url"].removeprefix(prefix))
    assert (token.org_id, token.message_id, token.cart_id) == (ORG_ID, MESSAGE_ID, CART_ID)
    assert ctx["coupon"]["code"] == "SAVE-7KQ4M2PXAB"
    assert ctx["coupon"]["description"] == "10% off"
    assert ctx["coupon"]["expires_at"] == "December 2, 2026"


def test_without_a_message_the_link_is_the_platforms():
    ctx = build_context(
        {"restore_url": PLATFORM_URL, "line_items": []}, {"name": "S"}, None, "x@example.com"
    )
    assert ctx["restore_url"] == ctx["platform_restore_url"] == PLATFORM_URL
    assert ctx["coupon"] is None and ctx["customer"]["first_name"] == ""


def test_money_in_the_carts_currency_and_locale():
    assert format_money("5", "EUR", "de_DE") == "5,00\xa0€"
    assert format_money("1234.5", "usd") == "$1,234.50"
    assert format_money("3", None) == "3.00"
    assert format_money(None, "USD") == ""
    ctx = context(currency="EUR", total="10")
    assert ctx["total"] == "€10.00"


def test_cart_reminder_email_html_and_text():
    ctx = context()
    out = render("cart_reminder", "{{ store.name }}: still yours", ctx)
    assert out.subject == "Acme Outfitters: still yours"
    html = out.html
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert 'name="viewport"' in html and "max-width:600px" in html  # responsive layout
    assert "is waiting for you." in html  # the preheader
    assert 'src="https://cdn.example.com/beanie.jpg"' in html
    assert "Merino Beanie" in html and "Charcoal" in html and "$48.00" in html
    assert "$71.82" in html
    assert f'href="{ctx["restore_url"]}"' in html and "Return to your cart" in html
    assert PLATFORM_URL not in html  # clicks must go through /r/ to be counted
    assert "1 Main Street, Springfield" in html
    assert "SAVE-" not in html  # no coupon box without a coupon
    text = out.text
    assert "Hi Ann," in text
    assert "- Merino Beanie (Charcoal) x 2: $48.00" in text
    assert "Total: $71.82" in text
    assert f"Return to your cart: {ctx['restore_url']}" in text
    assert "<" not in text


def test_unsubscribe_placeholder_in_footer():
    tag = Markup("<%asm_group_unsubscribe_raw_url%>")  # a provider substitution tag
    out = render("cart_reminder", "s", context(unsubscribe_url=tag))
    assert 'href="<%asm_group_unsubscribe_raw_url%>"' in out.html
    assert "Unsubscribe: <%asm_group_unsubscribe_raw_url%>" in out.text
    plain = render("cart_reminder", "s", context(unsubscribe_url="https://u.test/x?a=1&b=2"))
    assert 'href="https://u.test/x?a=1&amp;b=2"' in plain.html


def test_discount_email_shows_the_coupon_box():
    out = render(
        "cart_reminder_discount", "{{ coupon.description }} for you", context(coupon=COUPON)
    )
    assert out.subject == "10% off for you"
    assert "SAVE-7KQ4M2PXAB" in out.html and "Valid until December 2, 2026" in out.html
    assert "dashed" in out.html  # the coupon box
    assert "SAVE-7KQ4M2PXAB" in out.text and "valid until December 2, 2026" in out.text


def test_discount_template_without_coupon_does_not_render():
    with pytest.raises(RenderError):
        render("cart_reminder_discount", "s", context(coupon=None))


def test_fixed_amount_coupon_description():
    coupon = {**COUPON, "type": "fixed_amount", "value": "5", "currency": "USD"}
    assert context(coupon=coupon)["coupon"]["description"] == "$5.00 off"


def test_sms_is_short_with_link_and_opt_out():
    ctx = context("sms", coupon=COUPON)
    out = render(None, None, ctx)
    assert out.html == ""
    assert out.text.startswith("Acme Outfitters: Ann, your cart is waiting.")
    assert "SAVE-7KQ4M2PXAB" in out.text and ctx["restore_url"] in out.text
    assert out.text.endswith("Reply STOP to opt out")
    assert len(out.text) <= 306  # two concatenated GSM-7 segments


def test_inline_sms_gets_an_opt_out():
    out = render("Back soon? {{ restore_url }}", None, context("sms"), channel="sms")
    assert out.text.endswith(" Reply STOP to opt out")
    out = render("Text STOP to end. {{ store.name }}", None, context("sms"), channel="sms")
    assert out.text == "Text STOP to end. Acme Outfitters"


def test_push_payload_title_body_url():
    ctx = context("push")
    out = render("push_reminder", None, ctx)
    assert out.data == {
        "title": "Acme Outfitters: your cart is waiting",
        "body": "Ann, you left 3 items in your cart.",
        "url": ctx["restore_url"],
        "image": "https://cdn.example.com/beanie.jpg",
    }
    assert (out.subject, out.text) == (out.data["title"], out.data["body"])
    titled = render("push_reminder", "{{ customer.first_name }}, 10% off", ctx)
    assert titled.data["title"] == "Ann, 10% off"


def test_push_json_survives_hostile_names():
    items = [{"title": 'x", "url": "javascript:alert(1)', "quantity": 1, "price": "1"}]
    ctx = context("push", items=items)
    org = {"name": 'Evil "Store"</script>'}
    ctx["store"] = {**ctx["store"], "name": org["name"]}
    out = render("push_reminder", None, ctx)
    assert out.data["title"] == 'Evil "Store"</script>: your cart is waiting'
    assert out.data["url"] == ctx["restore_url"]
    json.dumps(out.data)


def test_hostile_cart_data_is_escaped_in_html():
    items = [
        {
            "title": "<script>alert('x')</script>",
            "quantity": 1,
            "price": "1",
            "image_url": "javascript:alert(1)",
        },
        {
            "title": 'Socks" onmouseover="alert(1)',
            "quantity": 1,
            "price": "1",
            "image_url": 'https://cdn.test/a.jpg" onerror="alert(1)',
        },
    ]
    out = render("cart_reminder", "s", context(items=items))
    assert "<script>" not in out.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in out.html
    assert "javascript:" not in out.html
    assert 'onerror="alert(1)"' not in out.html and 'onmouseover="alert(1)"' not in out.html
    assert "<script>alert('x')</script>" in out.text  # the text part is not HTML


def test_inline_template_is_escaped_and_text_is_stripped():
    items = [{"title": "<b>Bold</b>", "quantity": 1, "price": "2"}]
    out = render(
        '<p>{{ items[0].title }}</p> <a href="{{ restore_url }}">back</a>',
        "s",
        context(items=items),
    )
    assert "<p>&lt;b&gt;Bold&lt;/b&gt;</p>" in out.html
    assert out.text == "<b>Bold</b> back"


def test_inline_template_may_extend_the_layout():
    source = (
        '{% extends "layouts/email.html" %}'
        "{% block headline %}Hey {{ customer.first_name }}{% endblock %}"
    )
    out = render(source, "s", context())
    assert "Hey Ann" in out.html and "Return to your cart" in out.html


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ items.__class__.__base__ }}",
        "{% set x = items.append(1) %}{{ x }}",  # the context is immutable
        "{{ 'a' * 100000000 }}",
        "{{ 10 ** 100000 }}",
    ],
)
def test_sandbox_refuses_injection(source):
    with pytest.raises(RenderError) as err:
        render(source, "s", context())
    assert "SecurityError" in str(err.value) or "unsafe" in str(err.value)


def test_injection_in_subject_is_refused_too():
    with pytest.raises(RenderError):
        render("cart_reminder", "{{ ''.__class__.__mro__[1].__subclasses__() }}", context())


def test_missing_variable_is_an_error_not_a_blank():
    with pytest.raises(RenderError) as err:
        render("<p>{{ customer.middle_name }}</p>", "s", context())
    assert "middle_name" in str(err.value)
    with pytest.raises(RenderError):
        render("cart_reminder", "{{ nope }}", context())


def test_syntax_error_and_unknown_template():
    with pytest.raises(RenderError):
        render("<p>{% if %}</p>", "s", context())
    with pytest.raises(RenderError, match="unknown"):
        render("no_such_template", "s", context())
    with pytest.raises(RenderError, match="unknown"):
        render("sms_reminder", "s", context())  # an SMS template is no email
