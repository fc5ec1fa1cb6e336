"""Delivery: the scheduler tick, the outbox, RQ jobs, the send-time gate, coupons and
channel providers (see docs/architecture.md, "Data flow")."""
