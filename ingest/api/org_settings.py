"""Placeholder: being written."""

from flask import Blueprint

bp = Blueprint("org_settings", __name__)
