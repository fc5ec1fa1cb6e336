"""Placeholder: being written."""

from flask import Blueprint

bp = Blueprint("stores", __name__)
