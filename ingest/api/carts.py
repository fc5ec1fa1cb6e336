"""Placeholder: being written."""

from flask import Blueprint

bp = Blueprint("carts", __name__)
