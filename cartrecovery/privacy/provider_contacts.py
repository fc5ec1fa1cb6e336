"""Contacts held by providers: after an erasure commits, the subject's contacts are deleted
where a provider stores them (SendGrid Marketing Contacts). The only provider call in the
core package, kept here so it is found by name; it runs after the database erasure and
never raises."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from ..canonical import normalize_email

log = logging.getLogger(__name__)


def remove_from_providers(
    settings: Any, *, emails: Iterable[str] = (), phones: Iterable[str] = ()
) -> dict:
    """Remove the subject's contacts from providers that store them (after the database
    erasure committed). SendGrid (when ``SENDGRID_API_KEY`` is set): look the emails up in
    Marketing Contacts and delete the contacts found. Twilio keeps no contact store: 'not
    applicable'. Returns ``{"sendgrid": ..., "twilio": ...}``; a provider failure is reported,
    never raised (the erasure itself already happened)."""
    result: dict[str, Any] = {"twilio": "not_applicable"}
    emails = sorted({e for e in (normalize_email(x) for x in emails) if e})
    if not getattr(settings, "sendgrid_api_key", None):
        result["sendgrid"] = "not_configured"
    elif not emails:
        result["sendgrid"] = "no_email"
    else:
        result["sendgrid"] = _sendgrid_delete_contacts(settings, emails)
    return result


def _sendgrid_delete_contacts(settings: Any, emails: list[str]) -> dict:
    from python_http_client.exceptions import HTTPError
    from sendgrid import SendGridAPIClient

    client = SendGridAPIClient(settings.sendgrid_api_key, host=settings.sendgrid_base_url)
    client.client.timeout = 10.0
    try:
        try:
            found = client.client.marketing.contacts.search.emails.post(
                request_body={"emails": emails}
            )
            body = json.loads(found.body or b"{}")
        except HTTPError as exc:
            # 404: none of the emails is a contact.
            if getattr(exc, "status_code", 0) == 404:
                return {"status": "no_contacts", "deleted": 0}
            raise
        ids = [
            entry["contact"]["id"]
            for entry in (body.get("result") or {}).values()
            if isinstance(entry, dict) and entry.get("contact", {}).get("id")
        ]
        if not ids:
            return {"status": "no_contacts", "deleted": 0}
        response = client.client.marketing.contacts.delete(query_params={"ids": ",".join(ids)})
        job = json.loads(response.body or b"{}").get("job_id")
        return {"status": "deleted", "deleted": len(ids), "job_id": job}
    except HTTPError as exc:
        log.error("sendgrid contact deletion failed: %s", getattr(exc, "status_code", exc))
        return {"status": "error", "code": getattr(exc, "status_code", None)}
    except OSError as exc:
        log.error("sendgrid unreachable for contact deletion: %s", exc)
        return {"status": "error", "code": None}
