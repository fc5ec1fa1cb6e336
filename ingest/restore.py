"""Placeholder: being written."""

from flask import Blueprint

bp = Blueprint("restore", __name__)
