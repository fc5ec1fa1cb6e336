"""Who may do what: the access levels each role grants, for API keys and users alike.

API keys have the roles ``admin``, ``write``, ``read`` and ``publishable``
(:data:`cartrecovery.tenancy.ROLES`); users have ``viewer``, ``marketer`` and ``admin`` per
org (:data:`cartrecovery.users.ROLES`). A user role grants exactly what its key role
counterpart grants (viewer = read, marketer = write, admin = admin), so one table decides for
both, and the API and the dashboard ask the same question (:func:`allows`).

Access levels: ``read`` (reads), ``write`` (changes to campaigns, consents…), ``track``
(reporting carts and events), ``admin`` (keys, connections, settings, privacy).
"""

from __future__ import annotations

LEVELS = ("read", "write", "track", "admin")

# Per key role, the access levels it grants.
GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset({"read", "write", "track", "admin"}),
    "write": frozenset({"read", "write", "track"}),
    "read": frozenset({"read"}),
    "publishable": frozenset({"track"}),
}

# A user role is worth the key role it maps to.
USER_ROLE_GRANTS = {"viewer": "read", "marketer": "write", "admin": "admin"}


def grants(role: str, *, user: bool = False) -> frozenset[str]:
    """The access levels ``role`` grants (a user role when ``user``); none for an unknown one."""
    if user:
        role = USER_ROLE_GRANTS.get(role, "")
    return GRANTS.get(role, frozenset())


def allows(role: str, level: str, *, user: bool = False) -> bool:
    """Whether ``role`` (a user's when ``user``, else an API key's) may act at ``level``."""
    if level not in LEVELS:
        raise ValueError(f"access level must be one of {LEVELS}")
    return level in grants(role, user=user)
