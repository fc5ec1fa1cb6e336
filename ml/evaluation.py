"""How good the models are: uplift curves on held-out data, policy value against the
simulator's truth, and off-policy estimates on logged exploration (docs/models.md,
"Evaluation").
"""

from __future__ import annotations

import numpy as np
import polars as pl

# Compliance in the offline evaluation: SMS and push only inside 08:00-21:00 local (the
# default quiet hours; email is not held by them by default).
QUIET_CHANNELS = ("sms", "push")
QUIET_START, QUIET_END = 8, 21


def qini_coefficient(uplift, treated, outcome) -> tuple[float, float]:
    """(Qini coefficient, AUUC) of ``uplift`` scores on a randomised sample.

    Targeting people by decreasing predicted uplift, the Qini curve at the top k is
    ``Y_t(k) - Y_c(k) * N_t(k) / N_c(k)`` (incremental outcomes). The coefficient is the area
    between it and the random-targeting line, over the number of rows; AUUC is the area under
    the curve itself, over the number of rows. Both 0 for no signal; higher is better.
    """
    uplift = np.asarray(uplift, float)
    treated = np.asarray(treated, bool)
    outcome = np.asarray(outcome, float)
    n = len(uplift)
    if n == 0 or treated.all() or not treated.any():
        return float("nan"), float("nan")
    order = np.argsort(-uplift, kind="stable")
    t, y = treated[order], outcome[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * ~t)
    curve = y_t - y_c * np.divide(n_t, n_c, out=np.zeros(n), where=n_c > 0)
    random = np.arange(1, n + 1) / n * curve[-1]
    return float(np.mean(curve - random)), float(np.mean(curve))


def allowed_hours(how: np.ndarray, channel: np.ndarray) -> np.ndarray:
    hour = how % 24
    quiet = np.isin(channel, QUIET_CHANNELS)
    return ~quiet | ((hour >= QUIET_START) & (hour < QUIET_END))


# ---- against the simulator's truth -------------------------------------------------------


def _truth_rows(pop, cart_set, instants: np.ndarray, discount: np.ndarray) -> dict:
    """Message-log rows for carts sent at ``instants`` (per cart), as the model sees them."""
    c = cart_set.customer
    return {
        "store_key": np.char.add("s", pop.store[c].astype(str)),
        "customer_key": pop.customer_key(c),
        "channel": cart_set.channel,
        "device": pop.device[c],
        "timezone": pop.timezone[c],
        "variant": np.repeat("A", len(c)),
        "cart_value": cart_set.cart_value.astype(float),
        "item_count": cart_set.item_count,
        "abandoned_at": cart_set.abandoned_at,
        "sent_at": instants,
        "discount_rate": discount,
    }


def send_time_value(model, pop, cart_set, window_hours: int | None = None) -> dict:
    """True recovery rate of the model's greedy send time vs the fixed delay, per cart of
    ``cart_set`` (no code), with SMS/push held to 08-21 local."""
    from simulator import truth

    hours = truth.WINDOW_HOURS if window_hours is None else window_hours
    n = cart_set.size
    candidates = np.stack([truth.window_instants(a, hours) for a in cart_set.abandoned_at])
    k = candidates.shape[1]
    flat = candidates.ravel()
    rep = {
        key: np.repeat(v, k) for key, v in _truth_rows(pop, cart_set, flat[:n], np.zeros(n)).items()
    }
    rep["sent_at"] = flat
    _, q = model.predict(rep)
    how = truth.local_hour_of_week(flat, rep["timezone"])
    allowed = allowed_hours(how, rep["channel"]).reshape(n, k)
    q = np.where(allowed, q.reshape(n, k), -np.inf)
    # The fixed policy sends at the step's delay, deferred by quiet hours to the first
    # allowed hour (what the gate does).
    fixed_index = np.where(allowed.any(1), np.argmax(allowed, axis=1), 0)
    chosen = np.where(allowed.any(1), np.argmax(q, axis=1), 0)
    truth_at = {}
    for name, index in (("fixed", fixed_index), ("model", chosen)):
        _, p = truth.true_probabilities(
            pop,
            cart_set.customer,
            candidates[np.arange(n), index],
            cart_set.channel,
            np.zeros(n),
            abandoned_at=cart_set.abandoned_at,
            cart_value=cart_set.cart_value,
        )
        truth_at[name] = float(p.mean())
    best = truth.true_probabilities(
        pop,
        np.repeat(cart_set.customer, k),
        flat,
        np.repeat(cart_set.channel, k),
        np.zeros(n * k),
        abandoned_at=np.repeat(cart_set.abandoned_at, k),
        cart_value=np.repeat(cart_set.cart_value, k),
    )[1].reshape(n, k)
    oracle = float(np.where(allowed, best, -np.inf).max(1).mean())
    return {
        "carts": n,
        "recovery_fixed": truth_at["fixed"],
        "recovery_model": truth_at["model"],
        "recovery_oracle": oracle,
        "relative_gain": truth_at["model"] / truth_at["fixed"] - 1 if truth_at["fixed"] else 0.0,
    }


def content_value(model, pop, cart_set, discount_rate: float = 0.15, margin: float = 0.4) -> dict:
    """Expected margin (true probabilities) of always offering the code, never, and offering
    it where the model says the uplift pays, at the step's fixed send time."""
    from simulator import truth

    n = cart_set.size
    sent = cart_set.abandoned_at + int(truth.FIXED_DELAY_HOURS * 3600)
    rows = _truth_rows(pop, cart_set, sent, np.full(n, discount_rate))
    offer = model.offer(rows, np.full(n, discount_rate), margin)
    value = cart_set.cart_value.astype(float)
    margins = {}
    true_p = {}
    for d in (0.0, discount_rate):
        true_p[d] = truth.true_probabilities(
            pop,
            cart_set.customer,
            sent,
            cart_set.channel,
            np.full(n, d),
            abandoned_at=cart_set.abandoned_at,
            cart_value=cart_set.cart_value.astype(float),
        )[1]
    # What knowing each customer's hidden sensitivity would allow: the ceiling.
    oracle = true_p[discount_rate] * (margin - discount_rate) > true_p[0.0] * margin
    for name, code in (
        ("always", np.ones(n, bool)),
        ("never", np.zeros(n, bool)),
        ("model", offer),
        ("oracle", oracle),
    ):
        d = np.where(code, discount_rate, 0.0)
        _, p = truth.true_probabilities(
            pop,
            cart_set.customer,
            sent,
            cart_set.channel,
            d,
            abandoned_at=cart_set.abandoned_at,
            cart_value=value,
        )
        margins[name] = float(np.sum(p * value * (margin - d)))
    # The best rule on what a model can see that matters here (device and cart value: offer
    # to phones, or to everyone, above a cart value), chosen on the truth: the ceiling of
    # any model without the hidden sensitivity.
    with_code = true_p[discount_rate] * value * (margin - discount_rate)
    without = true_p[0.0] * value * margin
    mobile = np.asarray(pop.device[cart_set.customer]) == "mobile"
    visible = margins["never"]
    for floor in np.quantile(value, np.linspace(0, 1, 51)):
        for who in (mobile, np.ones(n, bool)):
            code = who & (value >= floor)
            visible = max(visible, float(np.sum(np.where(code, with_code, without))))
    margins["visible_rule"] = visible
    return {
        "carts": n,
        "margin_always": margins["always"],
        "margin_never": margins["never"],
        "margin_model": margins["model"],
        "margin_oracle": margins["oracle"],
        "margin_visible_rule": margins["visible_rule"],
        "offer_share": float(offer.mean()),
        "relative_gain_vs_always": margins["model"] / margins["always"] - 1
        if margins["always"]
        else 0.0,
    }


# ---- off-policy, on logged exploration ---------------------------------------------------


def off_policy(model, log: pl.DataFrame, window_hours: int = 24, step_hours: int = 1) -> dict:
    """Inverse-propensity (IPS) and doubly robust (DR) estimates of the recovery rate of
    the fixed delay and of the model's greedy choice, from a log whose rows carry the
    propensity of their send instant (rows without one are skipped). The candidates of a
    row are its fixed instant (the earliest send of its step in the log is not known, so
    the first candidate is taken as ``abandoned_at`` + the smallest delay seen) and every
    ``step_hours`` after it within ``window_hours``."""
    log = log.filter(pl.col("propensity").is_not_null() & (pl.col("propensity") > 0))
    n = log.height
    if n == 0:
        return {"rows": 0}
    delay = (log["sent_at"] - log["abandoned_at"]).to_numpy()
    fixed_delay = (
        int(np.min(delay[~log["explored"].to_numpy()]))
        if (~log["explored"].to_numpy()).any()
        else int(np.min(delay))
    )
    base = log["abandoned_at"].to_numpy() + fixed_delay
    k = window_hours // step_hours + 1
    candidates = base[:, None] + np.arange(k)[None, :] * step_hours * 3600
    rows = {c: log[c].to_numpy() for c in log.columns}
    rep = {c: np.repeat(v, k) for c, v in rows.items()}
    rep["sent_at"] = candidates.ravel()
    _, q = model.predict(rep)
    q = q.reshape(n, k)
    how = _how(candidates.ravel(), rep["timezone"]).reshape(n, k)
    allowed = allowed_hours(how.ravel(), rep["channel"]).reshape(n, k)
    greedy = np.argmax(np.where(allowed, q, -np.inf), axis=1)
    fixed = np.argmax(allowed, axis=1)
    sent = log["sent_at"].to_numpy()
    reward = log["recovered"].to_numpy().astype(float)
    p = log["propensity"].to_numpy()
    taken = np.clip(np.rint((sent - base) / (step_hours * 3600)).astype(int), 0, k - 1)
    q_taken = q[np.arange(n), taken]
    out = {"rows": n}
    for name, action in (("fixed", fixed), ("model", greedy)):
        match = (taken == action).astype(float)
        ips = match / p * reward
        q_target = q[np.arange(n), action]
        dr = q_target + match / p * (reward - q_taken)
        out[f"ips_{name}"] = float(ips.mean())
        out[f"dr_{name}"] = float(dr.mean())
        out[f"matches_{name}"] = int(match.sum())
    return out


def _how(instants, timezones):
    from .features import local_hour_of_week

    return local_hour_of_week(instants, timezones)
