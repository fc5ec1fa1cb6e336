"""Ground truth for the models: simulated customers with hidden preferences, and their logs.

Every customer has hidden preferred hours of the week (in their own time zone), an affinity
per channel and a discount sensitivity. :func:`true_probabilities` gives, for a cart and a
candidate send (instant, channel, discount), the true probability of a click and of a recovery
(an order after the message), so a model's choices can be scored offline against the truth
(docs/models.md, "Ground truth").

:func:`simulate_messages` writes a message log shaped like the warehouse's ``fct_messages``
joined to carts and customers (one row per sent message, with its outcome drawn from the
truth), from a logging policy that sends at the step's fixed delay, explores a random instant
10% of the time (recording the propensity) and offers the discount to a random half: the
randomised history an uplift learner needs. Everything comes from ``numpy`` generators seeded
by the caller, so a seed reproduces the same population and log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from .store import REGIONS

HOURS_OF_WEEK = 168
CHANNELS = ("email", "sms", "push")
DEVICES = ("mobile", "desktop")
# A step's send window in the simulation: the fixed instant plus up to this many hours.
WINDOW_HOURS = 24
FIXED_DELAY_HOURS = 1.0
QUIET_CHANNELS = ("sms", "push")
GROSS_MARGIN = 0.4

# Hidden archetypes: when in the (local) week a customer reads messages. Weights by device
# make the device an observable, imperfect proxy of the archetype (the "segment" the models
# can pool over).
ARCHETYPES = ("commuter", "office", "evening", "weekend")
_ARCHETYPE_BY_DEVICE = {"mobile": (0.40, 0.10, 0.40, 0.10), "desktop": (0.10, 0.55, 0.15, 0.20)}


def _archetype_curve(name: str) -> np.ndarray:
    """A 168-hour preference curve in [0, 1] (Monday 00:00 local = hour 0)."""
    curve = np.full(HOURS_OF_WEEK, 0.05)
    for day in range(7):
        weekday = day < 5
        base = day * 24
        if name == "commuter" and weekday:
            curve[base + 7 : base + 9] = 1.0
            curve[base + 17 : base + 20] = 0.9
        elif name == "office" and weekday:
            curve[base + 10 : base + 16] = 0.8
        elif name == "evening":
            curve[base + 19 : base + 23] = 1.0
        elif name == "weekend" and not weekday:
            curve[base + 9 : base + 19] = 0.9
        elif not weekday:
            curve[base + 11 : base + 15] = 0.3
    return curve


_CURVES = {name: _archetype_curve(name) for name in ARCHETYPES}


@dataclass(frozen=True)
class Population:
    """Customers of one or more stores with their hidden truth (arrays indexed by customer)."""

    store: np.ndarray  # store index
    timezone: np.ndarray  # IANA zone names
    device: np.ndarray  # "mobile" / "desktop"
    archetype: np.ndarray  # hidden
    preference: np.ndarray  # (n, 168) hidden preference in [0, 1] by local hour of week
    channel_affinity: np.ndarray  # (n, 3) hidden multiplier per CHANNELS
    discount_sensitivity: np.ndarray  # hidden, 0 = buys the same with or without a code
    intent: np.ndarray  # hidden base propensity to buy after a click

    @property
    def size(self) -> int:
        return len(self.store)

    def customer_key(self, index: np.ndarray | int) -> np.ndarray | str:
        return np.char.add("c", np.asarray(index).astype(str))


def population(n_customers: int, seed: int = 0, n_stores: int = 1) -> Population:
    """``n_customers`` customers per store over ``n_stores`` stores (seeded)."""
    rng = np.random.default_rng(seed)
    n = n_customers * n_stores
    store = np.repeat(np.arange(n_stores), n_customers)
    zones = np.array([r.timezone for r in REGIONS])
    timezone = zones[rng.integers(0, len(zones), n)]
    device = np.where(rng.random(n) < 0.6, "mobile", "desktop")
    archetype = np.empty(n, dtype=object)
    for name in DEVICES:
        mask = device == name
        archetype[mask] = rng.choice(ARCHETYPES, size=mask.sum(), p=_ARCHETYPE_BY_DEVICE[name])
    archetype = archetype.astype(str)
    preference = np.stack([_CURVES[a] for a in archetype])
    # Personal shift of the peak by up to two hours, and some personal noise.
    shift = rng.integers(-2, 3, n)
    preference = np.stack([np.roll(p, s) for p, s in zip(preference, shift, strict=True)])
    preference = np.clip(preference + rng.normal(0, 0.05, preference.shape), 0.0, 1.0)
    channel_affinity = np.column_stack(
        [
            rng.lognormal(0.0, 0.25, n),  # email
            rng.lognormal(0.3, 0.35, n),  # sms: read sooner
            rng.lognormal(-0.2, 0.35, n),  # push
        ]
    )
    # Most customers buy anyway or not at all; a minority are moved by a code.
    deal_seeker = rng.random(n) < np.where(device == "mobile", 0.45, 0.15)
    discount_sensitivity = np.where(deal_seeker, rng.uniform(0.6, 1.0, n), rng.uniform(0, 0.1, n))
    intent = rng.beta(5, 5, n)
    return Population(
        store,
        timezone,
        device,
        archetype,
        preference,
        channel_affinity,
        discount_sensitivity,
        intent,
    )


def local_hour_of_week(instants: np.ndarray, timezones: np.ndarray) -> np.ndarray:
    """Local hour of week (Monday 00h = 0) of UTC epoch seconds in each row's zone."""
    instants = np.asarray(instants, dtype=np.int64)
    timezones = np.asarray(timezones)
    out = np.empty(len(instants), dtype=np.int64)
    for zone in np.unique(timezones):
        mask = timezones == zone
        local = (
            pl.Series(instants[mask] * 1_000_000)
            .cast(pl.Datetime("us", "UTC"))
            .dt.convert_time_zone(str(zone))
        )
        out[mask] = (
            (local.dt.weekday().cast(pl.Int64) - 1) * 24 + local.dt.hour().cast(pl.Int64)
        ).to_numpy()
    return out


def true_probabilities(
    pop: Population,
    customer: np.ndarray,
    send_at: np.ndarray,
    channel: np.ndarray,
    discount: np.ndarray,
    *,
    abandoned_at: np.ndarray,
    cart_value: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(P(click), P(recovery)) for each row: a message to ``customer`` sent at ``send_at``
    (UTC epoch seconds) on ``channel`` with ``discount`` (fraction off, 0 for none) about a
    cart abandoned at ``abandoned_at`` worth ``cart_value``.

    A click is likelier at the customer's preferred local hours, on their favourite channel
    and soon after abandonment; a recovery is a click followed by an order, likelier with a
    code for discount-sensitive customers. Organic returns (no click) are not counted as
    recoveries: the message did not cause them.
    """
    customer = np.asarray(customer)
    how = local_hour_of_week(send_at, pop.timezone[customer])
    pref = pop.preference[customer, how]
    lookup = {name: i for i, name in enumerate(CHANNELS)}
    channel_index = np.fromiter((lookup[c] for c in np.asarray(channel).tolist()), np.int64)
    affinity = pop.channel_affinity[customer, channel_index]
    hours_late = np.maximum(0.0, (np.asarray(send_at) - np.asarray(abandoned_at)) / 3600.0)
    discount = np.asarray(discount, dtype=float)
    click = 0.22 * affinity * (0.15 + 1.6 * pref) * np.exp(-hours_late / 60.0)
    click = click * (1.0 + 0.5 * discount)
    click = np.clip(click, 0.0, 0.95)
    value_drag = 1.0 / (1.0 + np.asarray(cart_value, dtype=float) / 600.0)
    # A code moves a sensitive customer more on a big cart (15% of 300 is worth more than
    # 15% of 20).
    weight = np.clip(np.asarray(cart_value, dtype=float) / 100.0, 0.2, 3.0)
    lift = 1.0 + 8.0 * pop.discount_sensitivity[customer] * discount * weight
    buy = pop.intent[customer] * value_drag * lift
    buy = np.clip(buy, 0.0, 0.98)
    return click, click * buy


@dataclass(frozen=True)
class Carts:
    """Abandoned carts of a population (arrays indexed by cart)."""

    customer: np.ndarray
    abandoned_at: np.ndarray  # UTC epoch seconds
    cart_value: np.ndarray
    item_count: np.ndarray
    channel: np.ndarray

    @property
    def size(self) -> int:
        return len(self.customer)


def carts(pop: Population, n_carts: int, seed: int = 1, start: datetime | None = None) -> Carts:
    """``n_carts`` abandoned carts spread over 12 weeks from ``start``, by random customers."""
    rng = np.random.default_rng(seed)
    start = start or datetime(2026, 6, 1, tzinfo=UTC)
    customer = rng.integers(0, pop.size, n_carts)
    abandoned_at = int(start.timestamp()) + rng.integers(0, 12 * 7 * 86400, n_carts)
    item_count = rng.choice([1, 2, 3, 4], size=n_carts, p=[0.45, 0.30, 0.17, 0.08])
    cart_value = np.round(item_count * rng.lognormal(3.8, 0.6, n_carts), 2)
    channel = rng.choice(CHANNELS, size=n_carts, p=[0.7, 0.2, 0.1])
    return Carts(customer, abandoned_at, cart_value, item_count, channel)


def simulate_messages(
    pop: Population,
    cart_set: Carts,
    seed: int = 2,
    *,
    explore: float = 0.1,
    discount_share: float = 0.5,
    discount_rate: float = 0.15,
) -> pl.DataFrame:
    """The message log of a fixed-delay policy with ``explore`` exploration and a randomised
    discount (offered to ``discount_share`` of carts), outcomes drawn from the truth.

    Columns are those of :data:`ml.features.MESSAGE_COLUMNS` plus the hidden ``p_click`` and
    ``p_recovery`` (never used for training; kept to check estimators against the truth).
    """
    rng = np.random.default_rng(seed)
    n = cart_set.size
    k = WINDOW_HOURS + 1
    candidates = (
        cart_set.abandoned_at[:, None]
        + int(FIXED_DELAY_HOURS * 3600)
        + np.arange(k, dtype=np.int64)[None, :] * 3600
    )
    # SMS and push wait for 08:00-21:00 local (the default quiet hours), as the gate makes
    # them; the fixed policy sends at the first allowed hour, exploration at any allowed one.
    # Local hours of the window from its first hour's (a DST change inside one window is
    # ignored: it moves one hour on two days a year).
    first = local_hour_of_week(candidates[:, 0], pop.timezone[cart_set.customer])
    hour = (first[:, None] + np.arange(k)[None, :]) % 24
    quiet = np.isin(cart_set.channel, QUIET_CHANNELS)[:, None]
    allowed = ~quiet | ((hour >= 8) & (hour < 21))
    fixed_index = np.argmax(allowed, axis=1)
    explored = rng.random(n) < explore
    counts = allowed.sum(1)
    pick = np.minimum((rng.random(n) * counts).astype(int), counts - 1)
    # The pick-th allowed candidate of each row.
    ranks = np.cumsum(allowed, axis=1) - 1
    explore_index = np.argmax(allowed & (ranks == pick[:, None]), axis=1)
    index = np.where(explored, explore_index, fixed_index)
    send_at = candidates[np.arange(n), index]
    # Probability that this policy picks the instant it picked.
    propensity = explore / counts + (1 - explore) * (index == fixed_index)
    offered = rng.random(n) < discount_share
    discount = np.where(offered, discount_rate, 0.0)
    p_click, p_recovery = true_probabilities(
        pop,
        cart_set.customer,
        send_at,
        cart_set.channel,
        discount,
        abandoned_at=cart_set.abandoned_at,
        cart_value=cart_set.cart_value,
    )
    draw = rng.random(n)
    clicked = draw < p_click
    recovered = draw < p_recovery  # recovery implies click (p_recovery <= p_click)
    order = np.argsort(cart_set.abandoned_at, kind="stable")
    customer = cart_set.customer
    frame = pl.DataFrame(
        {
            "store_key": np.char.add("s", pop.store[customer].astype(str)),
            "customer_key": pop.customer_key(customer),
            "cart_key": np.char.add("k", np.arange(n).astype(str)),
            "channel": cart_set.channel,
            "device": pop.device[customer],
            "timezone": pop.timezone[customer],
            "variant": np.where(rng.random(n) < 0.5, "A", "B"),
            "cart_value": cart_set.cart_value.astype(float),
            "item_count": cart_set.item_count.astype(np.int64),
            "abandoned_at": cart_set.abandoned_at.astype(np.int64),
            "sent_at": send_at.astype(np.int64),
            "discount_offered": offered,
            "discount_rate": discount,
            "propensity": propensity,
            "explored": explored,
            "clicked": clicked,
            "recovered": recovered,
            "p_click": p_click,
            "p_recovery": p_recovery,
        }
    )[order]
    return frame


def window_instants(abandoned_at: int, hours: int = WINDOW_HOURS) -> np.ndarray:
    """The hourly candidate instants of a step's window: fixed delay, then every hour."""
    fixed = int(abandoned_at) + int(FIXED_DELAY_HOURS * 3600)
    return fixed + np.arange(hours + 1, dtype=np.int64) * 3600
