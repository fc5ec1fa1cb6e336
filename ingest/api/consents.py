"""Placeholder: being written."""

from flask import Blueprint

bp = Blueprint("consents", __name__)
