"""Placeholder: being written."""

from flask import Blueprint

bp = Blueprint("sendgrid", __name__)
