"""TCPA / CTIA keywords in inbound SMS: opt out, opt back in, ask for help.

Matching is on the whole message: one word, trimmed, case-insensitive (``stop``, `` Stop. ``
match; ``stop sending me these`` does not), as carriers and Twilio match them. When Twilio's
Advanced Opt-Out has classified the message (``OptOutType``), that classification wins, since
the messaging service may define extra keywords.

What a keyword does (suppression, consent ledger, which orgs) is
``cartrecovery.sms_inbound``; this module is the vocabulary and the replies.
"""

from __future__ import annotations

from enum import StrEnum


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
# Advanced Opt-Out's OptOutType values.
OPT_OUT_TYPES = {"STOP": Keyword.OPT_OUT, "START": Keyword.OPT_IN, "HELP": Keyword.HELP}

# Punctuation a phone keyboard adds around a single word ("Stop.", "STOP!").
_TRIM = " \t\r\n.,!?;:'\"“”‘’"


def classify(body: str | None, opt_out_type: str | None = None) -> Keyword | None:
    """The keyword an inbound message is, or None for an ordinary reply."""
    if opt_out_type and opt_out_type.strip().upper() in OPT_OUT_TYPES:
        return OPT_OUT_TYPES[opt_out_type.strip().upper()]
    word = (body or "").strip(_TRIM).upper()
    if not word or any(c.isspace() for c in word):
        return None
    if word in OPT_OUT_WORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_WORDS:
        return Keyword.OPT_IN
    if word in HELP_WORDS:
        return Keyword.HELP
    return None


def default_help_text(org_name: str | None) -> str:
    name = (org_name or "").strip() or "Cart reminders"
    return (
        f"{name}: cart reminder texts. Msg & data rates may apply. "
        "Reply STOP to opt out, START to opt back in."
    )


def reply_text(keyword: Keyword, org_names: list[str], help_text: str | None = None) -> str:
    """The confirmation texted back for ``keyword``; ``org_names`` are the senders it
    applied to (one name prefixes the text; several, or none, give a neutral text)."""
    prefix = f"{org_names[0]}: " if len(org_names) == 1 and org_names[0] else ""
    if keyword is Keyword.OPT_OUT:
        return (
            f"{prefix}You are unsubscribed and will receive no further messages. "
            "Reply START to resubscribe."
        )
    if keyword is Keyword.OPT_IN:
        return (
            f"{prefix}You are resubscribed to cart reminder texts. "
            "Reply HELP for help, STOP to opt out."
        )
    return help_text or default_help_text(org_names[0] if org_names else None)
