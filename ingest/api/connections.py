"""Placeholder: being written."""

from flask import Blueprint

bp = Blueprint("connections", __name__)
