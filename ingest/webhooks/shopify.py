"""Placeholder: being written."""

from flask import Blueprint

bp = Blueprint("shopify", __name__)
