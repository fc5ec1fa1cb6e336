"""Request examples shown in the OpenAPI document. tests/test_openapi.py sends each one to its
operation and expects the documented success, so they stay true."""

from __future__ import annotations

TRACK_EVENT = {
    "event": "cart_updated",
    "timestamp": "2026-05-01T12:00:00Z",
    "event_id": "evt_8f2c",
    "cart_data": {
        "cart_id": "store-cart-123",
        "email": "jane@example.com",
        "currency": "USD",
        "line_items": [{"sku": "BEANIE", "title": "Beanie", "quantity": 2, "price": "24.00"}],
        "restore_url": "https://shop.example.com/cart/restore/abc",
    },
}

REQUEST_EXAMPLES: dict[tuple[str, str], dict] = {
    ("PATCH", "/api/v1/settings"): {
        "abandonment_timeout_seconds": 900,
        "quiet_hours": {"start": "09:00", "end": "20:00"},
        "email_consent_policy": "soft_opt_in",
    },
    ("POST", "/api/v1/campaigns"): {
        "name": "Win back",
        "status": "active",
        "trigger_conditions": {"cart_value_min": 20, "currency": "USD"},
        "sequence_steps": [
            {
                "channel": "email",
                "delay_seconds": 3600,
                "subject": "You left {{ item_count }} items",
                "template": "cart_reminder",
            },
            {
                "channel": "email",
                "delay_seconds": 86400,
                "subject": "10% off your cart",
                "template": "cart_reminder_discount",
                "discount": {"type": "percentage", "value": 10},
            },
        ],
    },
    ("POST", "/api/v1/carts/track"): TRACK_EVENT,
    ("POST", "/api/v1/events/batch"): {"events": [{**TRACK_EVENT, "event_id": "evt_8f2d"}]},
    ("POST", "/api/v1/connections"): {
        "platform": "woocommerce",
        "shop_domain": "https://openapi-example.example.com",
    },
    ("POST", "/api/v1/consents"): {
        "channel": "email",
        "address": "jane@example.com",
        "status": "granted",
        "source": "checkout",
        "wording": "Email me about my cart",
    },
    ("POST", "/api/v1/publishable-keys"): {
        "allowed_origins": ["https://shop.example.com"],
        "name": "storefront",
    },
    ("POST", "/api/v1/webhook-subscriptions"): {
        "url": "https://hooks.example.com/cartrecovery",
        "events": ["cart.abandoned", "cart.recovered"],
    },
    ("POST", "/api/v1/privacy/erasure"): {"email": "jane@example.com", "reason": "request #12"},
}
