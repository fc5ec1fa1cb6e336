"""Placeholder: being written."""

from flask import Blueprint

bp = Blueprint("snippet", __name__)
