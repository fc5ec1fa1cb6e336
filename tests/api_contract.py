"""Calls through the Flask test client whose answers must match the OpenAPI document: the
status is one the operation declares, the content type too, and a JSON body validates
against the declared schema (jsonschema, draft 2020-12, which OpenAPI 3.1 uses)."""

from __future__ import annotations

from urllib.parse import urlsplit

from jsonschema import Draft202012Validator

from ingest.openapi import openapi_path


class ContractClient:
    def __init__(self, app, client, document: dict):
        self.app, self.client, self.document = app, client, document
        self.checked: set[tuple[str, str, int]] = set()

    def schema_for(self, method: str, url: str, status: int, media_type: str) -> dict | None:
        adapter = self.app.url_map.bind("localhost")
        rule, _ = adapter.match(urlsplit(url).path, method=method, return_rule=True)
        path = openapi_path(rule.rule)
        operation = self.document["paths"][path][method.lower()]
        reply = operation["responses"].get(str(status))
        assert reply is not None, f"{method} {path} answered {status}, not documented"
        content = reply.get("content")
        if content is None:
            return None
        assert media_type in content, f"{method} {path} {status}: {media_type} not documented"
        self.checked.add((method, path, status))
        return content[media_type]["schema"]

    def validate(self, schema: dict, body) -> None:
        # $refs point into the document's components: resolve them from the same root.
        root = {**schema, "components": self.document["components"]}
        errors = sorted(Draft202012Validator(root).iter_errors(body), key=str)
        assert not errors, "\n".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
        )

    def call(self, method: str, url: str, **kwargs):
        response = self.client.open(url, method=method, **kwargs)
        schema = self.schema_for(method, url, response.status_code, response.mimetype)
        if schema is not None and response.mimetype == "application/json":
            self.validate(schema, response.get_json())
        return response

    def get(self, url, **kw):
        return self.call("GET", url, **kw)

    def post(self, url, **kw):
        return self.call("POST", url, **kw)

    def patch(self, url, **kw):
        return self.call("PATCH", url, **kw)

    def put(self, url, **kw):
        return self.call("PUT", url, **kw)

    def delete(self, url, **kw):
        return self.call("DELETE", url, **kw)
