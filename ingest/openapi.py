"""The OpenAPI 3.1 document at ``/api/openapi.json``, and request models that feed it.

The document is built from the app's own ``url_map``, so every route any blueprint registers
appears, with the first docstring line of its view as summary. Request schemas come from
pydantic models, attached in one of two ways:

- ``@request_body(Model)`` / ``@request_query(Model)`` on a view: validates the JSON body
  (or query string) with the model, passes the result as ``body=`` / ``query=``, and documents it;
- ``register_schema(path, method, model)`` for views that validate on their own.
"""

from __future__ import annotations

from functools import wraps
from importlib import metadata

from flask import Blueprint, current_app, jsonify, request
from pydantic import BaseModel, ValidationError

from .errors import ApiError

bp = Blueprint("openapi", __name__)

_REF = "#/components/schemas/{model}"
_REGISTRY: dict[tuple[str, str], dict[str, type[BaseModel]]] = {}
_SKIP_METHODS = {"HEAD", "OPTIONS"}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "examples": ["validation_error"]},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
_ERRORS = {
    "400": "Invalid request (see error.details.errors)",
    "401": "Missing or invalid API key",
    "403": "The key's role may not do this",
    "404": "Not found (also for another org's resources)",
}


def _openapi_path(path: str) -> str:
    """``/api/v1/campaigns/<id>`` or ``<uuid:id>`` → ``/api/v1/campaigns/{id}``."""
    out, rest = [], path
    while "<" in rest:
        head, _, tail = rest.partition("<")
        variable, _, rest = tail.partition(">")
        out.append(head + "{" + variable.rpartition(":")[2] + "}")
    return "".join(out) + rest


def register_schema(path: str, method: str, model: type[BaseModel], part: str = "body") -> None:
    """Document ``model`` as the JSON body (``part="body"``) or the query parameters
    (``part="query"``) of ``method path``; ``path`` in Flask or OpenAPI form."""
    if part not in ("body", "query"):
        raise ValueError("part must be 'body' or 'query'")
    _REGISTRY.setdefault((_openapi_path(path), method.upper()), {})[part] = model


def _explain(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    summary = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:3]
    )
    return ApiError(400, "validation_error", summary, {"errors": errors})


def request_body(model: type[BaseModel], status: int = 200):
    """Validate the JSON body with ``model`` and pass it to the view as ``body=``.

    An empty, non-JSON or invalid body is a 400 ``validation_error`` naming each field.
    ``status`` is the success status the view answers with (documentation only).
    """

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            raw = request.get_data(cache=True)
            if not raw.strip():
                raise ApiError(400, "validation_error", "request body must be a JSON object")
            try:
                body = model.model_validate_json(raw)
            except ValidationError as exc:
                raise _explain(exc) from None
            return view(*args, body=body, **kwargs)

        wrapper.openapi_body = model
        wrapper.openapi_status = status
        return wrapper

    return decorator


def request_query(model: type[BaseModel]):
    """Validate the query string with ``model`` and pass it to the view as ``query=``."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            try:
                query = model.model_validate(request.args.to_dict())
            except ValidationError as exc:
                raise _explain(exc) from None
            return view(*args, query=query, **kwargs)

        wrapper.openapi_query = model
        return wrapper

    return decorator


class _Components:
    def __init__(self):
        self.schemas: dict[str, dict] = {"Error": ERROR_SCHEMA}

    def ref(self, model: type[BaseModel]) -> dict:
        schema = model.model_json_schema(ref_template=_REF)
        self.schemas.update(schema.pop("$defs", {}))
        self.schemas[model.__name__] = schema
        return {"$ref": _REF.format(model=model.__name__)}

    def query_parameters(self, model: type[BaseModel]) -> list[dict]:
        schema = model.model_json_schema(ref_template=_REF)
        self.schemas.update(schema.pop("$defs", {}))
        required = set(schema.get("required", []))
        return [
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {k: v for k, v in prop.items() if k != "description"},
                **({"description": prop["description"]} if "description" in prop else {}),
            }
            for name, prop in schema.get("properties", {}).items()
        ]


def _operation(rule, method: str, view, components: _Components) -> dict:
    path = _openapi_path(rule.rule)
    doc = (view.__doc__ or "").strip()
    summary, _, description = doc.partition("\n")
    registered = _REGISTRY.get((path, method), {})
    body = registered.get("body") or getattr(view, "openapi_body", None)
    query = registered.get("query") or getattr(view, "openapi_query", None)

    operation: dict = {
        "operationId": f"{rule.endpoint}.{method.lower()}",
        "summary": summary.strip() or rule.endpoint,
        "tags": [rule.endpoint.partition(".")[0]],
    }
    if description.strip():
        operation["description"] = description.strip()
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in sorted(rule.arguments)
    ]
    if query is not None:
        parameters += components.query_parameters(query)
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": components.ref(body)}},
        }

    error = {"content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}}}
    success = str(getattr(view, "openapi_status", 200))
    operation["responses"] = {success: {"description": "Success"}}
    if path.startswith("/api/v1/"):
        # Every REST API route needs a bearer key; webhooks authenticate by signature.
        operation["security"] = [{"bearerAuth": []}]
        for status, text in _ERRORS.items():
            operation["responses"][status] = {"description": text, **error}
    elif body is not None or parameters:
        operation["responses"]["400"] = {"description": _ERRORS["400"], **error}
    return operation


def build_document(app) -> dict:
    """The OpenAPI 3.1 document for every route registered on ``app``."""
    components = _Components()
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - _SKIP_METHODS):
            item = paths.setdefault(_openapi_path(rule.rule), {})
            item[method.lower()] = _operation(rule, method, view, components)
    try:
        version = metadata.version("cartrecovery")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cart recovery platform API",
            "version": version,
            "description": 'Errors are JSON {"error": {"code", "message", "details"}}.',
        },
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An org API key (cr_<org>_<secret>) or a JWT.",
                }
            },
        },
    }


@bp.get("/api/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 document of this API."""
    return jsonify(build_document(current_app))
