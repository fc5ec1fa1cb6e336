"""Delivery: the scheduler tick, the outbox, RQ jobs, the send-time gate, templates and
channel providers (see DESIGN.md, "How data flows")."""
