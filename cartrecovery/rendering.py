"""Rendering a message: Jinja2 in a sandbox, HTML autoescaped, plain text alongside.

A step's ``template`` is either the name of a built-in template or inline Jinja source
written by a marketer. Built-in templates live in ``templates/``, one file per part:

- ``<name>.html`` (+ ``<name>.txt``): an email, HTML and text part (``cart_reminder``,
  ``cart_reminder_discount``); they extend ``layouts/email.html``, the responsive layout;
- ``<name>.txt`` alone: an SMS (``sms_reminder``);
- ``<name>.json``: a web push payload ``{title, body, url}`` (``push_reminder``).

Inline source: for email the HTML part is it rendered escaped and the text part that HTML with
its tags stripped (or, for a source without tags, the source rendered unescaped); it may
``{% extends "layouts/email.html" %}`` and fill its blocks. For SMS it is the text; for push
it is the body (the subject is the title).

Everything runs in an immutable sandbox: no attribute starting with ``_``, no mutating the
context, no huge ``range``/``*``/``**``. A missing variable is an error rather than a blank,
so a broken template holds the message (RenderError) instead of sending something half-filled.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import Markup

from . import signed_links

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_TEMPLATES = {"email": "cart_reminder", "sms": "sms_reminder", "push": "push_reminder"}
DEFAULT_TEMPLATE = DEFAULT_TEMPLATES["email"]
DEFAULT_LOCALE = "en_US"
SMS_OPT_OUT = "Reply STOP to opt out"
# Same rule as the campaign validator: a bare name is a built-in template.
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_TAG = re.compile(r"<[A-Za-z/!]")
_STOP = re.compile(r"\bSTOP\b", re.IGNORECASE)
# Caps on what a template may build: a marketer's typo must not eat the worker's memory.
MAX_SEQUENCE = 100_000
MAX_EXPONENT = 100


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is too large")
            return operator.pow(left, right)
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                if len(seq) * times > MAX_SEQUENCE:
                    raise SecurityError("the result of * would be too long")
        return operator.mul(left, right)


_html = _Sandbox(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)
_text = _Sandbox(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=False,
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


@functools.lru_cache(maxsize=512)
def _compiled(env, source: str):
    # Campaigns reuse a handful of inline templates and subjects: compile each once per
    # process, not once per message (compiling costs more than rendering).
    return env.from_string(source)


class RenderError(Exception):
    """The template could not be rendered; the message must not be sent."""


@dataclass(frozen=True)
class Rendered:
    """A rendered message. Email: subject, html, text. SMS: text (html empty). Push: subject
    is the title, text the body, ``data`` the payload ``{"title", "body", "url"}``."""

    subject: str
    html: str
    text: str
    data: dict | None = None


# --- the context ---------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def _locale(name: str | None) -> str:
    try:
        return str(Locale.parse(name or DEFAULT_LOCALE))
    except (UnknownLocaleError, ValueError, TypeError):
        return DEFAULT_LOCALE


def format_money(amount: Any, currency: str | None, locale: str = DEFAULT_LOCALE) -> str:
    """``$71.82`` / ``71,82 €``; a plain two-decimal number without a (valid) currency."""
    value = _decimal(amount)
    if value is None:
        return ""
    if currency and re.fullmatch(r"[A-Za-z]{3}", currency):
        try:
            return format_currency(value, currency.upper(), locale=locale)
        except Exception:  # babel refuses odd codes; fall through to a plain number
            pass
    return format_decimal(value, format="#,##0.00", locale=locale)


def _http_url(value: Any) -> str:
    """The URL if it is http(s), else empty: cart data must not smuggle javascript: links."""
    text = str(value or "").strip()
    try:
        scheme = urlsplit(text).scheme.lower()
    except ValueError:
        return ""
    return text if scheme in ("http", "https") else ""


def _item(raw: Any, currency: str | None, locale: str) -> dict:
    """One line item in the shape templates use, whatever the platform called the fields."""
    raw = raw if isinstance(raw, dict) else {}
    title = raw.get("title") or raw.get("name") or raw.get("product_title") or ""
    try:
        quantity = int(raw.get("quantity") if raw.get("quantity") is not None else 1)
    except (TypeError, ValueError):
        quantity = 1
    price = _decimal(raw.get("price"))
    line_total = _decimal(raw.get("line_price"))
    if line_total is None and price is not None:
        line_total = price * quantity
    image = _http_url(raw.get("image_url") or raw.get("image"))
    return {
        "title": str(title),
        "name": str(title),
        "variant": str(raw.get("variant") or raw.get("variant_title") or ""),
        "sku": str(raw.get("sku") or ""),
        "quantity": quantity,
        "price": format_money(price, currency, locale),
        "price_amount": price,
        "line_total": format_money(line_total, currency, locale),
        "line_total_amount": line_total,
        "image": image,
        "image_url": image,
        "url": _http_url(raw.get("url")),
    }


def _org_settings(org: dict) -> dict:
    # ``org_settings`` (org_settings.get_settings, defaults filled in) when the caller loaded
    # it, else the raw ``app.orgs.settings`` jsonb.
    value = org.get("org_settings") or org.get("settings")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    return value if isinstance(value, dict) else {}


def _sender(settings: dict) -> dict:
    """The org's email sender identity (``sender_identities.email``: ``from_name``,
    ``from_email``, ``reply_to``); empty strings for what is not configured. It names the
    store in every channel (an SMS identity is only a number)."""
    identities = settings.get("sender_identities")
    email = identities.get("email") if isinstance(identities, dict) else None
    email = email if isinstance(email, dict) else {}
    return {key: str(email.get(key) or "") for key in ("from_name", "from_email", "reply_to")}


def _store(org: dict, settings: dict, store: dict | None) -> dict:
    address = settings.get("store_address") or settings.get("address") or ""
    if isinstance(address, dict):  # {"line1", "city", ...}: one line, in the order given
        address = ", ".join(str(v) for v in address.values() if v)
    sender = _sender(settings)
    result = {
        "name": str(org.get("name") or ""),
        "url": _http_url(settings.get("store_url")),
        "address": str(address),
        "support_email": str(
            settings.get("support_email") or sender["reply_to"] or sender["from_email"]
        ),
        "sender_name": sender["from_name"] or str(org.get("name") or ""),
        "sender_email": sender["from_email"],
        "logo_url": _http_url(settings.get("logo_url")),
    }
    for key, value in (store or {}).items():
        if value is not None:
            result[key] = value
    return result


def _coupon(coupon: dict | None, currency: str | None, locale: str) -> dict | None:
    """The coupon as templates see it: ``code``, ``description`` ("10% off"), ``expires_at``
    (a date in words), plus ``expires_at_iso``, ``type`` and ``value``."""
    if not coupon:
        return None
    kind = coupon.get("type") or "percentage"
    value = _decimal(coupon.get("value")) or Decimal("0")
    description = coupon.get("description")
    if not description:
        if kind == "percentage":
            description = f"{format_decimal(value, format='#,##0.##', locale=locale)}% off"
        elif kind == "free_shipping":
            description = "free shipping"
        else:
            description = f"{format_money(value, coupon.get('currency') or currency, locale)} off"
    expires = coupon.get("expires_at")
    if isinstance(expires, str):
        try:
            expires = datetime.fromisoformat(expires)
        except ValueError:
            expires = None
    return {
        "code": str(coupon.get("code") or ""),
        "description": str(description),
        "type": kind,
        "value": value,
        "expires_at": format_date(expires, format="long", locale=locale) if expires else "",
        "expires_at_iso": expires.isoformat() if expires else "",
    }


def build_context(
    cart: dict | None,
    org: dict,
    customer: dict | None,
    recipient: str | None,
    *,
    message: dict | None = None,
    settings: Any = None,
    coupon: dict | None = None,
    store: dict | None = None,
    unsubscribe_url: str | None = None,
    restore_url: str | None = None,
) -> dict:
    """The variables a template sees.

    ``cart``: an ``app.carts`` row; ``org``: ``{"name", "org_settings"? or "settings"?}``
    (the org's settings give ``sender_identities.email``, and, when set, ``store_url``,
    ``store_address``, ``support_email``, ``logo_url`` and ``locale``); ``customer``:
    ``first_name``/``last_name``/``email`` or None; ``recipient``: the address the message goes to.

    ``message`` (the outbox row: ``org_id``, ``message_id``, ``cart_id``, ``channel``) with
    ``settings`` (a ``Settings``: ``app_url``, ``secret_key``) makes ``restore_url`` the signed
    ``{APP_URL}/r/{token}`` link; without them (or with ``restore_url`` given explicitly) it
    is that URL or the platform's. The platform's is always ``platform_restore_url``.
    ``coupon``: what ``coupons.issue`` returned (or a preview placeholder), else None.
    ``store``: overrides for the ``store`` variables. ``unsubscribe_url``: a URL or a
    ``Markup`` provider tag for the footer (empty when None).

    Variables (docs/templates.md): ``cart{item_count,subtotal,total,total_amount,currency,
    restore_url}``, ``customer{first_name,last_name,name,email}``, ``items[{title,name,variant,
    sku,quantity,price,price_amount,line_total,line_total_amount,image,image_url,url}]``,
    ``item_count``, ``subtotal``, ``total``, ``total_amount``, ``currency``, ``restore_url``,
    ``platform_restore_url``, ``store{name,url,address,support_email,sender_name,
    sender_email,logo_url}``, ``store_name``, ``coupon{code,description,expires_at,...}`` or
    None, ``unsubscribe_url``, ``channel``, ``message_id``.
    """
    cart = cart or {}
    customer = customer or {}
    org_settings = _org_settings(org)
    locale = _locale(org_settings.get("locale"))
    channel = (message or {}).get("channel") or "email"
    currency = (cart.get("currency") or "").upper() or None
    first = customer.get("first_name") or ""
    last = customer.get("last_name") or ""
    items = [_item(i, currency, locale) for i in (cart.get("line_items") or [])]
    subtotal = sum((i["line_total_amount"] or Decimal("0") for i in items), Decimal("0"))
    total = _decimal(cart.get("total_price"))
    if total is None:
        total = subtotal
    platform_url = _http_url(cart.get("restore_url"))
    link = restore_url
    if link is None and message and settings is not None and message.get("message_id"):
        link = signed_links.restore_url(
            settings.app_url,
            settings.secret_key,
            message.get("org_id") or cart.get("org_id"),
            message["message_id"],
            message.get("cart_id") or cart.get("cart_id"),
        )
    item_count = cart.get("item_count") or sum(i["quantity"] for i in items)
    restore = link if link is not None else platform_url
    return {
        # The cart's figures under ``cart.`` as well as at the top level: a marketer writes
        # either (docs/templates.md). No ``cart.items``: on a dict Jinja would find the
        # ``items`` method first; the line items are ``items``.
        "cart": {
            "item_count": item_count,
            "subtotal": format_money(subtotal, currency, locale),
            "total": format_money(total, currency, locale),
            "total_amount": total,
            "currency": currency or "",
            "restore_url": restore,
        },
        "customer": {
            "email": recipient or customer.get("email") or cart.get("email") or "",
            "first_name": first,
            "last_name": last,
            "name": " ".join(p for p in (first, last) if p),
        },
        "items": items,
        "item_count": item_count,
        "subtotal": format_money(subtotal, currency, locale),
        "total": format_money(total, currency, locale),
        "total_amount": total,
        "currency": currency or "",
        "restore_url": restore,
        "platform_restore_url": platform_url,
        "store": _store(org, org_settings, store),
        "store_name": str(org.get("name") or ""),
        "coupon": _coupon(coupon, currency, locale),
        "unsubscribe_url": unsubscribe_url or "",
        "channel": channel,
        "message_id": str((message or {}).get("message_id") or ""),
    }


# --- rendering -----------------------------------------------------------------------------


def text_environment() -> ImmutableSandboxedEnvironment:
    """The sandbox subjects and text parts render in (to parse a source the same way)."""
    return _text


def is_builtin_name(source: str) -> bool:
    """A bare name (``cart_reminder``) refers to a built-in template, not inline source."""
    return bool(_NAME.match(source.strip()))


def is_dynamic(source: str) -> bool:
    """A SendGrid dynamic template id (``d-…``): SendGrid renders it."""
    return bool(_DYNAMIC.match(source.strip()))


def _exists(name: str) -> bool:
    return (TEMPLATES / name).is_file()


def _render_email(source: str, context: dict) -> tuple[str, str]:
    if _NAME.match(source):
        name = source.removesuffix(".html").removesuffix(".txt")
        if not _exists(f"{name}.html"):
            raise RenderError(f"unknown email template {source!r}")
        html = _html.get_template(f"{name}.html").render(context)
        text = (
            _text.get_template(f"{name}.txt").render(context)
            if _exists(f"{name}.txt")
            else _strip(html)
        )
        return html, text.strip() + "\n"
    html = _compiled(_html, source).render(context)
    text = _strip(html) if _TAG.search(source) else _compiled(_text, source).render(context)
    return html, text


def _strip(html: str) -> str:
    return Markup(html).striptags()


def _render_sms(source: str, context: dict) -> str:
    if _NAME.match(source):
        name = source.removesuffix(".txt").removesuffix(".html")
        if not _exists(f"{name}.txt"):
            raise RenderError(f"unknown SMS template {source!r}")
        text = _text.get_template(f"{name}.txt").render(context)
    else:
        text = _compiled(_text, source).render(context)
    # One line per line, no runs of blanks: every character of an SMS costs.
    text = "\n".join(" ".join(line.split()) for line in text.strip().splitlines() if line.strip())
    if not _STOP.search(text):
        text = f"{text} {SMS_OPT_OUT}" if text else SMS_OPT_OUT
    return text


def _render_push(source: str, subject: str, context: dict) -> dict:
    if _NAME.match(source):
        name = source.removesuffix(".json")
        if _exists(f"{name}.json"):
            raw = _text.get_template(f"{name}.json").render(context)
            try:
                data = json.loads(raw)
            except ValueError as exc:
                raise RenderError(f"push template {name!r} is not valid JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise RenderError(f"push template {name!r} must render a JSON object")
        elif _exists(f"{name}.txt"):
            data = {"body": _text.get_template(f"{name}.txt").render(context)}
        else:
            raise RenderError(f"unknown push template {source!r}")
    else:
        data = {"body": _compiled(_text, source).render(context)}
    title = subject or str(data.get("title") or "")
    body = " ".join(str(data.get("body") or "").split())
    url = _http_url(data.get("url")) or context.get("restore_url") or ""
    if not title or not body:
        raise RenderError("a push notification needs a title and a body")
    payload = {k: v for k, v in data.items() if k not in ("title", "body", "url")}
    return {"title": title, "body": body, "url": url, **payload}


_DYNAMIC = re.compile(r"^d-[0-9a-f]{32}$")
_TEMPLATE_DATA_KEYS = (
    "cart",
    "customer",
    "items",
    "item_count",
    "subtotal",
    "total",
    "currency",
    "restore_url",
    "store",
    "coupon",
    "unsubscribe_url",
)


def template_data(context: dict, subject: str) -> dict:
    """What a SendGrid dynamic template gets: the same variables our templates see, as
    plain JSON (formatted money as text), plus the rendered ``subject``."""
    data = {key: context.get(key) for key in _TEMPLATE_DATA_KEYS}
    data["subject"] = subject
    return json.loads(json.dumps(data, default=str))


def render(
    template: str | None, subject: str | None, context: dict, channel: str | None = None
) -> Rendered:
    """Render one message for ``channel`` (default ``context["channel"]``, else email), or
    raise RenderError (syntax, undefined variable, sandbox violation, unknown template).

    SMS text always carries an opt-out ("Reply STOP to opt out" is appended when the text
    does not mention STOP). ``template`` None means the channel's default built-in.
    """
    channel = channel or context.get("channel") or "email"
    source = (template or DEFAULT_TEMPLATES.get(channel, DEFAULT_TEMPLATE)).strip()
    try:
        subject_text = " ".join(_compiled(_text, subject or "").render(context).split())
        if channel == "sms":
            return Rendered(subject=subject_text, html="", text=_render_sms(source, context))
        if channel == "push":
            data = _render_push(source, subject_text, context)
            return Rendered(subject=data["title"], html="", text=data["body"], data=data)
        if _DYNAMIC.match(source):
            # SendGrid renders the email; our own layout is still rendered so the built-in
            # outbox and previews show what the data says.
            html, text = _render_email(DEFAULT_TEMPLATE, context)
            return Rendered(
                subject=subject_text,
                html=html,
                text=text,
                data={
                    "template_id": source,
                    "dynamic_template_data": template_data(context, subject_text),
                },
            )
        html, text = _render_email(source, context)
    except RenderError:
        raise
    except TemplateNotFound as exc:
        raise RenderError(f"template not found: {exc}") from exc
    except Exception as exc:  # syntax, undefined, sandbox violations, type errors alike
        raise RenderError(f"{type(exc).__name__}: {exc}") from exc
    # A subject is one header line.
    return Rendered(subject=subject_text, html=html, text=text)
