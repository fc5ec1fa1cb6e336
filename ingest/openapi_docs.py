"""The reference part of the API docs, as Markdown generated from the OpenAPI document.

``python -m ingest.openapi_docs > docs/api-reference.md`` (``make docs``). A test regenerates
it and compares, so the committed reference always matches what the app serves; the guides
(docs/api.md) link to it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

HEADER = """# API reference

Generated from the OpenAPI document (`GET /api/openapi.json`) by
`python -m ingest.openapi_docs > docs/api-reference.md`; do not edit by hand.
Guides for the flows: [api.md](api.md), [tracking-api.md](tracking-api.md),
[adapters.md](adapters.md).

{description}

Authentication: {bearer}
"""

# Groups of operations, in the order of the guides; the first matching prefix wins.
SECTIONS = (
    ("Settings", "/api/v1/settings"),
    ("Campaigns", "/api/v1/campaigns"),
    ("Tracking", "/api/v1/carts/track"),
    ("Tracking", "/api/v1/events"),
    ("Carts", "/api/v1/carts"),
    ("Analytics", "/api/v1/analytics"),
    ("Connections", "/api/v1/connections"),
    ("Consents", "/api/v1/consents"),
    ("Privacy", "/api/v1/privacy"),
    ("Publishable keys and push", "/api/v1/publishable-keys"),
    ("Publishable keys and push", "/api/v1/push"),
    ("Outgoing webhook subscriptions", "/api/v1/webhook-subscriptions"),
    ("Inbound webhooks", "/api/webhooks"),
    ("Service", "/api/"),
    ("Links and files", "/"),
)


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _name(ref: str) -> str:
    return ref.rsplit("/", 1)[1]


def type_of(schema: dict) -> str:
    """A short Markdown rendering of a JSON schema's type (models link to their section)."""
    if "$ref" in schema:
        name = _name(schema["$ref"])
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema or "oneOf" in schema:
        return " \\| ".join(type_of(s) for s in schema.get("anyOf", schema.get("oneOf")))
    if "const" in schema:
        return f"`{schema['const']!r}`".replace("'", '"')
    if "enum" in schema:
        return " \\| ".join(f'`"{v}"`' if isinstance(v, str) else f"`{v}`" for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object":
        extra = schema.get("additionalProperties")
        return f"object of {type_of(extra)}" if isinstance(extra, dict) and extra else "object"
    if kind is None:
        return "any"
    return f"{kind} ({schema['format']})" if "format" in schema else str(kind)


_BOUNDS = (
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minItems", "≥ {} items"),
    ("maxItems", "≤ {} items"),
    ("pattern", "pattern `{}`"),
)


def constraints(schema: dict) -> str:
    parts = []
    for branch in [schema, *schema.get("anyOf", [])]:
        parts += [text.format(branch[key]) for key, text in _BOUNDS if key in branch]
    if "default" in schema and schema["default"] is not None:
        parts.append(f"default `{_cell(json.dumps(schema['default']))}`")
    return "; ".join(parts)


def _fields(schema: dict) -> list[str]:
    props = schema.get("properties", {})
    if not props:
        return []
    required = set(schema.get("required", []))
    lines = [
        "| field | type | required | constraints | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, prop in props.items():
        lines.append(
            f"| `{name}` | {type_of(prop)} | {'yes' if name in required else ''} | "
            f"{_cell(constraints(prop))} | {_cell(prop.get('description', ''))} |"
        )
    return lines


def _operation(method: str, path: str, op: dict) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", "", _cell(op["summary"]), ""]
    if op.get("description"):
        lines += [op["description"].strip(), ""]
    if op.get("security"):
        auth = "bearer API key"
    elif path.startswith("/api/webhooks/"):
        auth = "the sender's signature (see above), no API key"
    else:
        auth = "none"
    lines += [f"Authentication: {auth}.", ""]
    params = op.get("parameters", [])
    if params:
        lines += [
            "| parameter | in | type | required | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for p in params:
            detail = "; ".join(t for t in (constraints(p["schema"]), p.get("description")) if t)
            lines.append(
                f"| `{p['name']}` | {p['in']} | {type_of(p['schema'])} | "
                f"{'yes' if p.get('required') else ''} | {_cell(detail)} |"
            )
        lines.append("")
    body = op.get("requestBody")
    if body:
        for media_type, content in body["content"].items():
            required = "required" if body.get("required") else "optional"
            lines += [f"Body ({media_type}, {required}): {type_of(content['schema'])}", ""]
            if "example" in content:
                example = json.dumps(content["example"], indent=2, ensure_ascii=False)
                lines += ["```json", example, "```", ""]
    lines += ["| status | answer | body |", "| --- | --- | --- |"]
    for status, reply in op["responses"].items():
        content = reply.get("content", {})
        shown = ", ".join(f"{type_of(c['schema'])} ({m})" for m, c in content.items())
        lines.append(f"| {status} | {_cell(reply['description'])} | {shown} |")
    return [*lines, ""]


def render(document: dict) -> str:
    """The Markdown reference of ``document``."""
    security = document["components"]["securitySchemes"]["bearerAuth"]
    out = [
        HEADER.format(
            description=document["info"]["description"], bearer=security["description"]
        ).rstrip(),
        "",
    ]
    grouped: dict[str, list[str]] = {}
    for path, item in document["paths"].items():
        section = next(title for title, prefix in SECTIONS if path.startswith(prefix))
        for method, op in item.items():
            grouped.setdefault(section, []).extend(_operation(method, path, op))
    for title in dict.fromkeys(t for t, _ in SECTIONS):
        if title in grouped:
            out += [f"## {title}", "", *grouped[title]]
    out += ["## Schemas", ""]
    for name, schema in document["components"]["schemas"].items():
        out += [f"### {name}", ""]
        if schema.get("description"):
            out += [" ".join(schema["description"].split()), ""]
        fields = _fields(schema)
        out += [*(fields or [f"Type: {type_of(schema)}"]), ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    from cartrecovery.settings import Settings

    from .app import create_app
    from .openapi import build_document

    # The document depends on the routes only: the database is never contacted.
    app = create_app(Settings(database_url="postgresql:///unused"))
    sys.stdout.write(render(build_document(app)))


if __name__ == "__main__":
    main()
