"""GDPR: erase a data subject, export what is held about them, purge old raw payloads.

One module per concern:

- ``subject``: who a request is about (:func:`subject.resolve_subject`) and how to find them
  in any stored value;
- ``schema``: which tables and columns hold what (introspected, so new tables are covered);
- ``erasure``: erase a subject, or everything a store connection sent;
- ``export``: everything held about a subject (portability);
- ``retention``: empty raw payloads older than the org's retention;
- ``provider_contacts``: delete the subject's contacts at providers after an erasure.

Suppressions that must survive an erasure live in ``cartrecovery.suppressions``.
"""
