"""The OpenAPI 3.1 document at ``/api/openapi.json``.

Operations are the app's own routes (``url_map``): summary and description from the view's
docstring, request and response schemas from pydantic models. The models come from the
request decorators on the view (``ingest/validation.py``) and from the table of operations
(``ingest/schemas/operations.py``), which names every answer; all JSON schemas are generated
by pydantic in one pass, so a model used in several places is one component.
"""

from __future__ import annotations

import inspect
from importlib import metadata
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, current_app, jsonify
from pydantic import BaseModel, TypeAdapter

from .schemas.common import Error, ErrorInfo
from .schemas.examples import REQUEST_EXAMPLES

# Views import the request decorators from here. (The table of operations is imported when a
# document is built: it names view modules' models, and views import this module.)
from .validation import request_body, request_query

if TYPE_CHECKING:
    from .schemas.operations import Operation, Reply

__all__ = ["bp", "build_document", "register_schema", "request_body", "request_query"]

bp = Blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"
_SKIP_METHODS = {"HEAD", "OPTIONS"}
# Request models of routes added by others (plug-ins, tests) that are not in the table.
_REGISTRY: dict[tuple[str, str], dict[str, type[BaseModel]]] = {}

ERRORS = {
    400: "Invalid request: `error.details.errors` names each field or query parameter",
    401: "Missing, unknown or revoked API key",
    403: "The key's role may not do this",
    404: "Not found (also a malformed id, and another org's resources)",
    409: "Conflicts with the resource's state",
    413: "Body larger than the server accepts",
    415: "Unsupported content type",
    422: "The template does not render",
    429: "Rate limited: retry after `Retry-After` seconds",
    502: "A platform's API answered with an error (nothing was stored)",
}
# Where the request is authenticated otherwise, these codes mean something else.
ERRORS_BY_AUTH = {
    "api_or_publishable_key": {
        403: "The key's role may not do this, or the publishable key does not allow the Origin",
    },
    "signature": {
        401: "Signature (or token) missing or invalid",
        403: "Refused by the sender's rules (see the description)",
        404: "No active store (or platform) matches the request",
    },
}
BEARER = (
    "An org API key, `Authorization: Bearer cr_<org>_<secret>` (roles: read, write, admin; "
    "see docs/api.md). The tracking endpoints (`/api/v1/carts/track`, "
    "`/api/v1/push/subscriptions`) also take a publishable key (role `publishable`, made by "
    "`POST /api/v1/publishable-keys`), limited to its allowed origins and rate limited per "
    "client IP. A user's access token (a JWT from `POST /api/v1/auth/token`, docs/auth.md) is "
    "accepted wherever an API key is, except on the tracking endpoints; its role maps viewer "
    "to read, marketer to write, admin to admin."
)
DESCRIPTION = (
    'Errors are JSON `{"error": {"code", "message", "details"}}` (schema `Error`); '
    "a refused request changes nothing. `/api/v1` is authenticated by bearer API keys or "
    "users' access tokens; "
    "`/api/webhooks` by each sender's signature, described per operation. Guides: docs/api.md."
)


def openapi_path(path: str) -> str:
    """``/api/v1/campaigns/<id>`` or ``<uuid:id>`` → ``/api/v1/campaigns/{id}``."""
    out, rest = [], path
    while "<" in rest:
        head, _, tail = rest.partition("<")
        variable, _, rest = tail.partition(">")
        out.append(head + "{" + variable.rpartition(":")[2] + "}")
    return "".join(out) + rest


def register_schema(path: str, method: str, model: type[BaseModel], part: str = "body") -> None:
    """Document ``model`` as the JSON body (``part="body"``) or the query parameters
    (``part="query"``) of ``method path`` (Flask or OpenAPI form), for a route that is not in
    the table of operations."""
    if part not in ("body", "query"):
        raise ValueError("part must be 'body' or 'query'")
    _REGISTRY.setdefault((openapi_path(path), method.upper()), {})[part] = model


class _Route:
    """One (path, method) of the app with everything known about it."""

    def __init__(self, rule, method: str, view, table: dict[tuple[str, str], Operation]):
        self.rule, self.method, self.view = rule, method, view
        self.path = openapi_path(rule.rule)
        self.spec: Operation | None = table.get((method, self.path))
        registered = _REGISTRY.get((self.path, method), {})
        self.body = (
            getattr(view, "openapi_body", None)
            or registered.get("body")
            or (self.spec.body if self.spec else None)
        )
        self.query = (
            getattr(view, "openapi_query", None)
            or registered.get("query")
            or (self.spec.query if self.spec else None)
        )

    def types(self) -> list[Any]:
        found = [t for t in (self.body, self.query) if t is not None]
        if self.spec:
            found += [r.schema for r in self.spec.replies.values() if r.schema is not None]
        return found


class _Schemas:
    """JSON schemas of every type the document uses, generated by pydantic in one pass."""

    def __init__(self, types: list[Any]):
        adapters = {t: TypeAdapter(t) for t in dict.fromkeys([Error, *types])}
        by_key, definitions = TypeAdapter.json_schemas(
            [(t, "validation", adapter) for t, adapter in adapters.items()], ref_template=REF
        )
        self._by_type = {key: schema for (key, _mode), schema in by_key.items()}
        self.components: dict[str, Any] = dict(definitions.get("$defs", {}))
        # The error shape inline, as clients (and older tests) read it.
        self.components["Error"] = {
            **self.components["Error"],
            "properties": {"error": self.components.pop(ErrorInfo.__name__)},
        }

    def of(self, tp: Any) -> dict:
        return self._by_type[tp]

    def query_parameters(self, model: type[BaseModel]) -> list[dict]:
        schema = self.components[self.of(model)["$ref"].rsplit("/", 1)[1]]
        required = set(schema.get("required", []))
        parameters = []
        for name, prop in schema.get("properties", {}).items():
            prop = {k: v for k, v in prop.items() if k not in ("description", "title")}
            # A query parameter is absent or a string, never null: keep the other branch.
            branches = [b for b in prop.get("anyOf", []) if b != {"type": "null"}]
            if len(branches) == 1 and len(prop["anyOf"]) == 2:
                prop = {**branches[0], **{k: v for k, v in prop.items() if k != "anyOf"}}
                if prop.get("default", "") is None:
                    del prop["default"]
            parameter = {"name": name, "in": "query", "required": name in required}
            # A parameter named by an alias (``from``, a Python keyword) has another field name.
            field = model.model_fields.get(name) or next(
                f for f in model.model_fields.values() if f.alias == name
            )
            description = field.description
            if description:
                parameter["description"] = description
            parameters.append({**parameter, "schema": prop})
        return parameters


def _content(media_type: str, schema: dict) -> dict:
    return {media_type: {"schema": schema}}


def _error_reply(status: int, auth: str, schemas: _Schemas) -> dict:
    return {
        "description": ERRORS_BY_AUTH.get(auth, {}).get(status, ERRORS[status]),
        "content": _content("application/json", schemas.of(Error)),
    }


def _pointer(method: str, path: str) -> str:
    """A JSON pointer to an operation of this document (RFC 6901 escapes)."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method.lower()


def _reply(reply: Reply, schemas: _Schemas) -> dict:
    out: dict[str, Any] = {"description": reply.description}
    if reply.schema is not None:
        out["content"] = _content(reply.media_type, schemas.of(reply.schema))
        for media_type in reply.more_media_types:
            out["content"].update(_content(media_type, schemas.of(reply.schema)))
        if reply.or_json_error:
            out["content"].update(_content("application/json", schemas.of(Error)))
    if reply.links:
        out["links"] = {
            name: {
                "operationRef": _pointer(*target),
                "parameters": {p: f"$response.body#/{f}" for p, f in params.items()},
            }
            for name, (target, params) in reply.links.items()
        }
    return out


def _auth(route: _Route) -> str:
    if route.spec:
        return route.spec.auth
    return "api_key" if route.path.startswith("/api/v1/") else "none"


def _error_statuses(route: _Route) -> set[int]:
    spec = route.spec
    statuses = set(spec.errors if spec else ())
    auth = _auth(route)
    if auth in ("api_key", "api_or_publishable_key"):
        statuses |= {401, 403}
    if auth == "api_or_publishable_key":
        statuses.add(429)
    if route.body is not None or route.query is not None:
        statuses.add(400)
    if route.body is not None:
        statuses.add(413)
    if route.rule.arguments and route.path.startswith("/api/v1/"):
        statuses.add(404)
    return statuses


def _operation(route: _Route, schemas: _Schemas) -> dict:
    spec = route.spec
    # The docstring's first paragraph is the summary, the rest the description.
    summary, _, description = inspect.cleandoc(route.view.__doc__ or "").partition("\n\n")
    summary = " ".join(summary.split())
    operation: dict[str, Any] = {
        "operationId": f"{route.rule.endpoint}.{route.method.lower()}",
        "summary": (spec.summary if spec and spec.summary else summary) or route.rule.endpoint,
        "tags": [route.rule.endpoint.partition(".")[0]],
    }
    text = "\n\n".join(t for t in (description.strip(), spec.notes if spec else None) if t)
    if text:
        operation["description"] = text
    auth = _auth(route)
    if auth in ("api_key", "api_or_publishable_key"):
        operation["security"] = [{"bearerAuth": []}]
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in sorted(route.rule.arguments)
    ]
    if route.query is not None:
        parameters += schemas.query_parameters(route.query)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        media_type = spec.body_media_type if spec and spec.body is route.body else None
        content = _content(media_type or "application/json", schemas.of(route.body))
        example = REQUEST_EXAMPLES.get((route.method, route.path))
        if example is not None:
            content["application/json"]["example"] = example
        operation["requestBody"] = {
            "required": spec.body_required if spec else True,
            "content": content,
        }

    responses: dict[str, Any] = {}
    if spec:
        for status, reply in spec.replies.items():
            responses[str(status)] = _reply(reply, schemas)
    else:
        responses[str(getattr(route.view, "openapi_status", 200))] = {"description": "Success"}
    for status in sorted(_error_statuses(route)):
        responses.setdefault(str(status), _error_reply(status, auth, schemas))
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def routes(app: Flask) -> list[_Route]:
    """Every (path, method) the app serves, but Flask's own static files."""
    from .schemas.operations import OPERATIONS

    found = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - _SKIP_METHODS):
            found.append(_Route(rule, method, app.view_functions[rule.endpoint], OPERATIONS))
    return found


def build_document(app: Flask) -> dict:
    """The OpenAPI 3.1 document for every route registered on ``app``."""
    found = routes(app)
    schemas = _Schemas([t for route in found for t in route.types()])
    paths: dict[str, dict] = {}
    for route in found:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    try:
        version = metadata.version("cartrecovery")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cart recovery platform API",
            "version": version,
            "description": DESCRIPTION,
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": BEARER}
            },
        },
    }


@bp.get("/api/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document of this API."""
    return jsonify(build_document(current_app))
