"""Checking a campaign's subjects and templates against the variables a message really gets.

A template that names a variable the rendering context does not have would hold every message
at send time (``UndefinedError``), when nobody is watching. So a campaign is checked when it is
created or changed, against the context :func:`cartrecovery.rendering.build_context` builds for
a sample cart (the same builder a send uses, so the list cannot drift from the product):

1. statically, every branch: each top-level name the source reads
   (``jinja2.meta.find_undeclared_variables``) and each ``a.b`` / ``a["b"]`` path below a
   context variable must exist;
2. by rendering it for the sample cart, with the step's coupon only when the step offers a
   discount, so ``{{ coupon.code }}`` without a discount (or an ``{% if coupon %}``) is
   refused too.

The variables are documented in docs/templates.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from jinja2 import UndefinedError, meta, nodes

from . import rendering
from .discounts import PREVIEW_CODE

SAMPLE_ITEMS = [
    {"title": "Merino Wool Beanie", "variant_title": "Charcoal", "quantity": 2, "price": "24.00"},
    {"title": "Trail Running Socks", "variant_title": "M", "quantity": 1, "price": "18.50"},
]
SAMPLE_CUSTOMER = {"first_name": "Alex", "last_name": "Sample", "email": "alex@example.com"}


class UnknownVariable(ValueError):
    """A subject or template names a variable messages do not have."""

    def __init__(self, name: str, available: list[str], where: str, reason: str | None = None):
        self.name, self.available, self.where = name, available, where
        problem = reason or f"uses the unknown variable '{name}'"
        super().__init__(f"{where} {problem}; available: {', '.join(available)}")


@cache
def sample_context(channel: str = "email", with_coupon: bool = True) -> dict:
    """The context a message of ``channel`` gets, for a sample cart (read-only: cached)."""
    cart = {
        "currency": "USD",
        "total_price": Decimal("66.50"),
        "line_items": SAMPLE_ITEMS,
        "email": SAMPLE_CUSTOMER["email"],
        "restore_url": "https://shop.example.com/cart/recover",
    }
    coupon = {
        "code": PREVIEW_CODE,
        "type": "percentage",
        "value": Decimal("10"),
        "expires_at": datetime(2030, 1, 31, tzinfo=UTC),
    }
    return rendering.build_context(
        cart,
        {"name": "Sample Store", "settings": {"store_url": "https://shop.example.com"}},
        SAMPLE_CUSTOMER,
        SAMPLE_CUSTOMER["email"],
        message={"channel": channel, "message_id": None},
        coupon=coupon if with_coupon else None,
        restore_url="https://cartrecovery.example.com/r/sample",
        unsubscribe_url="https://cartrecovery.example.com/u/sample",
    )


def available_variables() -> list[str]:
    """Every variable name and ``a.b`` path a template may use, sorted."""
    names: list[str] = []

    def walk(value: Any, prefix: str) -> None:
        for key, inner in value.items():
            names.append(prefix + key)
            if isinstance(inner, dict):
                walk(inner, f"{prefix}{key}.")
            elif isinstance(inner, list) and inner and isinstance(inner[0], dict):
                walk(inner[0], f"{prefix}{key}[].")

    walk(sample_context(), "")
    return sorted(names)


def _path(node: nodes.Node) -> list[str] | None:
    """``a.b["c"]`` as ``["a", "b", "c"]``; None for anything not a plain path from a name."""
    if isinstance(node, nodes.Name):
        return [node.name]
    if isinstance(node, nodes.Getattr):
        head = _path(node.node)
        return head + [node.attr] if head else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        head = _path(node.node)
        return head + [node.arg.value] if head and isinstance(node.arg.value, str) else None
    return None


def check_names(source: str, where: str) -> None:
    """Raise UnknownVariable for the first name or path ``source`` reads that no message has
    (every branch of the template). Syntax errors are the caller's to report."""
    shape = sample_context()
    tree = rendering.text_environment().parse(source)
    read = meta.find_undeclared_variables(tree)
    unknown = sorted(read - shape.keys() - rendering.text_environment().globals.keys())
    if unknown:
        raise UnknownVariable(unknown[0], sorted(shape), where)
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        path = _path(node)
        if not path or path[0] not in read:  # a loop variable or a {% set %}
            continue
        value: Any = shape
        for depth, part in enumerate(path):
            if not isinstance(value, dict):
                break
            if part not in value:
                prefix = ".".join(path[:depth])
                available = sorted(f"{prefix}.{key}" if prefix else key for key in value)
                raise UnknownVariable(".".join(path[: depth + 1]), available, where)
            value = value[part]


def check_step(
    channel: str, subject: str | None, template: str, *, has_discount: bool, where: str
) -> None:
    """Check a step's (or variant's) subject and template, statically and by rendering them
    for the sample cart. Raises UnknownVariable; other render failures are left to the
    send-time hold (they depend on the cart)."""
    if subject:
        check_names(subject, f"{where}subject")
    inline = not rendering.is_builtin_name(template) and not rendering.is_dynamic(template)
    if inline:
        check_names(template, f"{where}template")
    context = sample_context(channel, has_discount)
    try:
        if subject:
            part = "subject"
            rendering.text_environment().from_string(subject).render(context)
        part = "template"
        rendering.render(template, subject, context, channel)
    except (UndefinedError, rendering.RenderError) as exc:
        cause = exc if isinstance(exc, UndefinedError) else exc.__cause__
        if isinstance(cause, UndefinedError):
            missing = "" if has_discount else " (a step without a discount has no coupon)"
            raise UnknownVariable(
                str(cause),
                available_variables(),
                f"{where}{part}",
                f"does not render for a sample cart: {cause}{missing}",
            ) from None
