"""Rendering a message: Jinja2 in a sandbox, HTML autoescaped, plain text alongside.

A step's ``template`` is either the name of a built-in template (``cart_reminder`` →
``templates/cart_reminder.html`` + ``.txt``) or inline Jinja source written by a marketer:
the HTML part is it rendered escaped; the text part is that HTML with its tags stripped (or,
for a source without tags, the source rendered unescaped). Marketer-written templates run
in the sandbox, and a missing variable is an error rather than a blank, so a broken template
holds the message instead of sending something half-filled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_TEMPLATE = "cart_reminder"
# Same rule as the campaign validator: a bare name is a built-in template.
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_TAG = re.compile(r"<[A-Za-z/!]")

_html = SandboxedEnvironment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=StrictUndefined)
_text = SandboxedEnvironment(loader=FileSystemLoader(TEMPLATES), autoescape=False,
                             undefined=StrictUndefined, keep_trailing_newline=True)


class RenderError(Exception):
    """The template could not be rendered; the message must not be sent."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def _item(raw) -> dict:
    """One line item in the shape templates use, whatever the platform called the fields."""
    raw = raw if isinstance(raw, dict) else {}
    return {
        "title": raw.get("title") or raw.get("name") or raw.get("product_title") or "",
        "variant": raw.get("variant") or raw.get("variant_title") or "",
        "quantity": raw.get("quantity") or 1,
        "price": raw.get("price") if raw.get("price") is not None else "",
        "image": raw.get("image") or raw.get("image_url") or "",
        "url": raw.get("url") or "",
    }


def build_context(cart: dict, org: dict, customer: dict | None, recipient: str | None) -> dict:
    """The variables a template sees: customer, items, total, currency, restore_url, store."""
    customer = customer or {}
    first = customer.get("first_name") or ""
    last = customer.get("last_name") or ""
    name = " ".join(p for p in (first, last) if p)
    items = [_item(i) for i in (cart.get("line_items") or [])]
    return {
        "customer": {"email": recipient or cart.get("email") or "", "first_name": first,
                     "last_name": last, "name": name},
        "items": items,
        "item_count": cart.get("item_count") or sum(int(i["quantity"] or 0) for i in items),
        "total": cart.get("total_price"),
        "currency": cart.get("currency") or "",
        "restore_url": cart.get("restore_url") or "",
        "store": {"name": org.get("name") or ""},
        "store_name": org.get("name") or "",
    }


def render(template: str | None, subject: str | None, context: dict) -> Rendered:
    """Render subject, HTML and text for one message, or raise RenderError."""
    source = (template or DEFAULT_TEMPLATE).strip()
    try:
        subject_text = _text.from_string(subject or "").render(context)
        if _NAME.match(source):
            name = source.removesuffix(".html").removesuffix(".txt")
            try:
                html_t = _html.get_template(f"{name}.html")
                text_t = _text.get_template(f"{name}.txt")
            except TemplateNotFound as exc:
                raise RenderError(f"unknown template {source!r}") from exc
            html, text = html_t.render(context), text_t.render(context)
        else:
            html = _html.from_string(source).render(context)
            if _TAG.search(source):
                text = Markup(html).striptags()
            else:
                text = _text.from_string(source).render(context)
    except RenderError:
        raise
    except Exception as exc:  # syntax, undefined, sandbox violations, type errors alike
        raise RenderError(f"{type(exc).__name__}: {exc}") from exc
    # A subject is one header line.
    return Rendered(subject=" ".join(subject_text.split()), html=html, text=text)
