"""Placeholder: being written."""

from flask import Blueprint

bp = Blueprint("webhook_subscriptions", __name__)
