"""Placeholder: being written."""

from flask import Blueprint

bp = Blueprint("preview", __name__)
