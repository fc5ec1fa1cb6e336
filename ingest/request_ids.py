"""A request id per request: the caller's ``X-Request-ID`` when well formed, else a new one;
on every log line of the request (``cartrecovery/logs.py``) and in the answer's
``X-Request-ID``."""

from __future__ import annotations

from flask import Flask, g, request

from cartrecovery import logs


def init_app(app: Flask) -> None:
    """Call after every other ``before_request`` is registered: the id is bound first, so
    even a request refused early (a rate limit, a bad header) is logged and answered with it."""

    def _bind():
        request_id = logs.accept_request_id(request.headers.get("X-Request-ID"))
        g.request_id = request_id
        g.request_id_token = logs.REQUEST_ID.set(request_id)

    app.before_request_funcs.setdefault(None, []).insert(0, _bind)

    @app.after_request
    def _answer(response):
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
        return response

    @app.teardown_request
    def _unbind(_exc):
        token = g.pop("request_id_token", None)
        if token is not None:
            logs.REQUEST_ID.reset(token)
