"""Placeholder: being written."""

from flask import Blueprint

bp = Blueprint("twilio", __name__)
