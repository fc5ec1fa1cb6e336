"""The Runtime of the current Flask app."""

from flask import current_app

from cartrecovery.runtime import Runtime


def runtime() -> Runtime:
    return current_app.extensions["cartrecovery"]
