"""The one feature definition shared by training and scoring (docs/models.md, "Features").

A *message log* is a Polars frame with :data:`MESSAGE_COLUMNS` (one row per sent message:
who, which cart, when it was abandoned and sent, on which channel, with or without a code,
and whether it was clicked and recovered). :func:`load_messages` builds it from the dbt marts;
``simulator.truth.simulate_messages`` builds one with known truth.

:class:`FeatureSpace` is fitted on a log and then turns *rows* (a dict of equal-length numpy
arrays: the log's columns, or one cart's candidate send instants at scoring time) into the
feature matrix with :meth:`FeatureSpace.matrix`. Everything a row needs beyond its own
columns (engagement by local hour of week per customer, segment and overall; customer
history; store rates) lives in the fitted space, so scoring one cart needs no database.

Engagement is pooled empirical-Bayes style: a customer's click rate at a local hour is their
own (kernel-smoothed) count shrunk toward their segment's rate, which is shrunk toward the
global rate; the prior strengths are estimated from the data by the method of moments
(beta-binomial). Training rows see only their customer's earlier messages, as scoring does.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

HOURS_OF_WEEK = 168
DAY_BUCKETS = 48  # customer level: local hour of day x (weekday, weekend)
CHANNELS = ("email", "sms", "push")
DEVICES = ("mobile", "desktop")
# Cart value in hundreds, capped: an outlier cart must not set the code's modelled effect.
MAX_VALUE_HUNDREDS = 5.0
# Circular smoothing over neighbouring local hours: a click at 19:00 says something about 18h.
KERNEL = np.array([0.25, 0.5, 1.0, 0.5, 0.25])

MESSAGE_COLUMNS = {
    "store_key": pl.String,
    "customer_key": pl.String,
    "cart_key": pl.String,
    "channel": pl.String,
    "device": pl.String,
    "timezone": pl.String,
    "variant": pl.String,
    "cart_value": pl.Float64,
    "item_count": pl.Int64,
    "abandoned_at": pl.Int64,  # UTC epoch seconds
    "sent_at": pl.Int64,
    "discount_offered": pl.Boolean,
    "discount_rate": pl.Float64,  # fraction of the cart value; 0 without a code
    "propensity": pl.Float64,  # of the send instant under the logging policy (None: unknown)
    "explored": pl.Boolean,
    "clicked": pl.Boolean,
    "recovered": pl.Boolean,
}

SEND_TIME_FEATURES = (
    "eng_customer",
    "eng_segment",
    "eng_global",
    "customer_sends",
    "hod_sin",
    "hod_cos",
    "weekend",
    "hours_late",
    "channel_email",
    "channel_sms",
    "channel_push",
    "device_mobile",
    "device_desktop",
    "log_cart_value",
    "item_count",
    "customer_clicks",
    "customer_recoveries",
    "recency_days",
    "store_rate",
    "discount_rate",
)
CONTENT_FEATURES = (
    "channel_email",
    "channel_sms",
    "channel_push",
    "device_mobile",
    "device_desktop",
    "log_cart_value",
    "item_count",
    "customer_sends",
    "customer_clicks",
    "customer_recoveries",
    "customer_code_lift",
    "recency_days",
    "store_rate",
    "hours_late",
    "variant_b",
    "value_hundreds",
    "mobile_x_value_hundreds",
)
# What the code's effect may depend on in the content model (ml/content.py): the money a
# percentage code saves grows with the cart, with diminishing returns (its log), and deal
# seekers are more often on phones. No device term of its own: a code worth nothing moves
# nobody, on any device; the device scales what each unit of the code's money does
# (docs/models.md, "Content model").
UPLIFT_FEATURES = ("log_value_hundreds", "mobile_x_log_value_hundreds")


def customer_key(customer_id, email, cart_id) -> str:
    """How messages are tied to a customer: the store's customer id, else the e-mail address,
    else the cart itself (the warehouse loader applies the same rule in SQL)."""
    if customer_id:
        return str(customer_id)
    if email:
        return str(email).strip().lower()
    return str(cart_id)


def _logit(p):
    p = np.minimum(np.maximum(p, 1e-4), 1 - 1e-4)
    return np.log(p / (1 - p))


def _smooth(counts: np.ndarray, period: int) -> np.ndarray:
    """Circular kernel smoothing along the last axis, within each ``period`` (a day)."""
    shape = counts.shape
    days = counts.reshape(*shape[:-1], -1, period)
    out = np.zeros_like(days, dtype=np.float64)
    half = len(KERNEL) // 2
    for offset, weight in zip(range(-half, half + 1), KERNEL, strict=True):
        out += weight * np.roll(days, offset, axis=-1)
    return out.reshape(shape)


# _smooth over the day buckets as a matrix (row @ _SMOOTHING): one product per cart.
_SMOOTHING = _smooth(np.eye(DAY_BUCKETS), 24)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def code_evidence(clicks, code_clicks, rec_code, rec_none, conversion, strength):
    """What a customer's own history says of how much a code moves them, beyond everyone:
    the log ratio of their conversion after a click with a code to without, each rate shrunk
    toward everyone's (empirical Bayes, worth ``strength`` clicks), minus everyone's log
    ratio. 0 without history (or without conversions to compare); positive for someone who
    bought after clicking coded messages and not after uncoded ones. Conditioning on the
    click keeps out what a code does not change (when and on which channel they read)."""
    # Plain arithmetic on floats or arrays: delivery scores one message with floats
    # (FeatureSpace.cart_columns), where numpy's conversions would cost more than the rest.
    with_code, without = conversion
    if with_code <= 0 or without <= 0:
        return 0.0 * clicks
    k = strength
    own_code = (rec_code + k * with_code) / (code_clicks + k)
    own_none = (rec_none + k * without) / (np.maximum(clicks - code_clicks, 0.0) + k)
    return np.log(own_code / with_code) - np.log(own_none / without)


def prior_strength(sends: np.ndarray, clicks: np.ndarray, minimum: int = 5) -> float:
    """Beta-binomial prior strength (alpha + beta) by the method of moments: how many
    messages a group's own rate is worth against the pooled rate."""
    sends, clicks = np.asarray(sends, float), np.asarray(clicks, float)
    keep = sends >= minimum
    if keep.sum() < 3 or clicks.sum() == 0:
        return 20.0
    rates = clicks[keep] / sends[keep]
    mean = clicks[keep].sum() / sends[keep].sum()
    sampling = np.mean(mean * (1 - mean) / sends[keep])
    between = max(np.var(rates) - sampling, 1e-6)
    return float(np.clip(mean * (1 - mean) / between - 1, 1.0, 500.0))


def local_hour_of_week(instants, timezones) -> np.ndarray:
    """Local hour of week (Monday 00h = 0) of UTC epoch seconds, each in its row's zone."""
    instants = np.asarray(instants, dtype=np.int64)
    timezones = np.asarray(timezones).astype(str)
    out = np.empty(len(instants), dtype=np.int64)
    zones = np.unique(timezones)
    if len(instants) <= 64:  # scoring: zoneinfo is faster than building a Series
        for i, (t, z) in enumerate(zip(instants.tolist(), timezones.tolist(), strict=True)):
            local = datetime.fromtimestamp(t, _zone(z))
            out[i] = local.weekday() * 24 + local.hour
        return out
    for zone in zones:
        mask = timezones == zone
        local = (
            pl.Series(instants[mask] * 1_000_000)
            .cast(pl.Datetime("us", "UTC"))
            .dt.convert_time_zone(_zone(zone).key)
        )
        out[mask] = (
            (local.dt.weekday().cast(pl.Int64) - 1) * 24 + local.dt.hour().cast(pl.Int64)
        ).to_numpy()
    return out


def _hours_of_week_one_zone(instants: np.ndarray, timezone: str) -> np.ndarray:
    """:func:`local_hour_of_week` of instants in one zone: when the zone's UTC offset is the
    same at the first and the last instant (no daylight-saving change between them: a
    scoring window is a day or so), one offset serves them all; else each is converted."""
    if not len(instants):
        return np.zeros(0, dtype=np.int64)
    zone = _zone(str(timezone))
    first = datetime.fromtimestamp(int(instants.min()), zone).utcoffset()
    last = datetime.fromtimestamp(int(instants.max()), zone).utcoffset()
    if first != last:
        return local_hour_of_week(instants, np.repeat(str(timezone), len(instants)))
    # The epoch began on a Thursday: hour 72 of its week counted from Monday 00h.
    local = instants + int(first.total_seconds())
    return (local // 3600 + 72) % HOURS_OF_WEEK


_ZONES: dict[str, ZoneInfo] = {}


def _zone(name: str) -> ZoneInfo:
    zone = _ZONES.get(name)
    if zone is None:
        try:
            zone = ZoneInfo(name)
        except (ValueError, KeyError, OSError):
            zone = ZoneInfo("UTC")
        _ZONES[name] = zone
    return zone


def _day_bucket(how: np.ndarray) -> np.ndarray:
    return (how >= 120).astype(np.int64) * 24 + how % 24


def _index(keys: np.ndarray, lookup: dict[str, int]) -> np.ndarray:
    return np.fromiter((lookup.get(k, -1) for k in keys.tolist()), np.int64, len(keys))


@dataclass
class FeatureSpace:
    """Engagement tables and customer/store history fitted on a message log."""

    global_rate: np.ndarray = field(default_factory=lambda: np.zeros(HOURS_OF_WEEK))
    segments: list[str] = field(default_factory=list)
    segment_rate: np.ndarray = field(default_factory=lambda: np.zeros((0, DAY_BUCKETS)))
    customer_index: dict[str, int] = field(default_factory=dict)
    customer_sends: np.ndarray = field(default_factory=lambda: np.zeros((0, DAY_BUCKETS)))
    customer_clicks: np.ndarray = field(default_factory=lambda: np.zeros((0, DAY_BUCKETS)))
    customer_totals: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    customer_last: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # Clicks on messages that carried a code, per customer (for `code_evidence`). A space
    # pickled before it existed has none: the evidence is then 0 for everyone.
    customer_code_clicks: np.ndarray | None = None
    # Conversion after a click with and without a code over everyone, and how many clicks a
    # customer's own conversion is worth against it.
    code_conversion: tuple[float, float] = (0.0, 0.0)
    conversion_strength: float = 5.0
    customer_strength: float = 20.0
    segment_strength: float = 200.0
    stores: dict[str, float] = field(default_factory=dict)
    overall_recovery: float = 0.0

    @classmethod
    def fit(cls, log: pl.DataFrame) -> FeatureSpace:
        how = local_hour_of_week(log["sent_at"].to_numpy(), log["timezone"].to_numpy())
        clicked = log["clicked"].to_numpy().astype(float)
        recovered = log["recovered"].to_numpy().astype(float)
        coded = log["discount_rate"].to_numpy() > 0
        space = cls()
        sends_g = np.bincount(how, minlength=HOURS_OF_WEEK).astype(float)
        clicks_g = np.bincount(how, weights=clicked, minlength=HOURS_OF_WEEK)
        mean = clicked.mean() if len(clicked) else 0.0
        sm_s, sm_c = _smooth(sends_g, 24), _smooth(clicks_g, 24)
        space.global_rate = (sm_c + 5 * mean) / (sm_s + 5)

        segment = log["device"].to_numpy().astype(str)
        space.segments = sorted(set(segment.tolist()))
        seg_idx = _index(segment, {s: i for i, s in enumerate(space.segments)})
        flat = seg_idx * DAY_BUCKETS + _day_bucket(how)
        size = len(space.segments) * DAY_BUCKETS
        seg_s = np.bincount(flat, minlength=size).reshape(-1, DAY_BUCKETS).astype(float)
        seg_c = np.bincount(flat, weights=clicked, minlength=size).reshape(-1, DAY_BUCKETS)
        space.segment_strength = prior_strength(seg_s.ravel(), seg_c.ravel())
        seg_s, seg_c = _smooth(seg_s, 24), _smooth(seg_c, 24)
        k = space.segment_strength
        # The prior of a segment's bucket: the global rate averaged over its hours of week.
        folded = np.zeros(DAY_BUCKETS)
        np.add.at(folded, _day_bucket(np.arange(HOURS_OF_WEEK)), space.global_rate)
        folded /= np.bincount(_day_bucket(np.arange(HOURS_OF_WEEK)), minlength=DAY_BUCKETS)
        space.segment_rate = (seg_c + k * folded) / (seg_s + k)

        keys = log["customer_key"].to_numpy().astype(str)
        unique, cust_idx = np.unique(keys, return_inverse=True)
        space.customer_index = {k: i for i, k in enumerate(unique.tolist())}
        n = len(unique)
        flat = cust_idx * DAY_BUCKETS + _day_bucket(how)
        cs = np.bincount(flat, minlength=n * DAY_BUCKETS).reshape(n, DAY_BUCKETS)
        cc = np.bincount(flat, weights=clicked, minlength=n * DAY_BUCKETS).reshape(n, DAY_BUCKETS)
        space.customer_strength = prior_strength(cs.sum(1), cc.sum(1), minimum=3)
        space.customer_sends = cs.astype(np.float32)
        space.customer_clicks = cc.astype(np.float32)
        totals = np.column_stack(
            [
                np.bincount(cust_idx, minlength=n),
                np.bincount(cust_idx, weights=clicked, minlength=n),
                np.bincount(cust_idx, weights=recovered, minlength=n),
                np.bincount(cust_idx, weights=coded, minlength=n),
                np.bincount(cust_idx, weights=recovered * coded, minlength=n),
                np.bincount(cust_idx, weights=recovered * ~coded, minlength=n),
            ]
        )
        space.customer_totals = totals.astype(np.float32)
        code_clicks = np.bincount(cust_idx, weights=clicked * coded, minlength=n)
        space.customer_code_clicks = code_clicks.astype(np.float32)
        space.code_conversion = (
            _ratio((recovered * coded).sum(), (clicked * coded).sum()),
            _ratio((recovered * ~coded).sum(), (clicked * ~coded).sum()),
        )
        space.conversion_strength = prior_strength(totals[:, 1], totals[:, 2], minimum=2)
        last = np.full(n, -np.inf)
        np.maximum.at(last, cust_idx, log["abandoned_at"].to_numpy().astype(float))
        space.customer_last = last
        stores = log.group_by("store_key").agg(
            pl.col("recovered").sum().alias("r"), pl.len().alias("n")
        )
        space.overall_recovery = float(recovered.mean()) if len(recovered) else 0.0
        space.stores = {
            row["store_key"]: (row["r"] + 50 * space.overall_recovery) / (row["n"] + 50)
            for row in stores.iter_rows(named=True)
        }
        return space

    # -- rows -> features --------------------------------------------------------------
    def columns(self, rows: dict, *, history_only: bool = False) -> dict[str, np.ndarray]:
        """Every feature as a named column, for ``rows`` (dict of equal-length arrays with
        the message-log columns).

        ``history_only`` (training rows, which need ``clicked``/``recovered``): a row's
        customer features count only that customer's *earlier* messages in ``rows``, as
        scoring a new cart sees them. (Counting everything but the row itself would make a
        row's own outcome lower its feature: a leak that flips the sign at scoring time.)"""
        sent_at = np.asarray(rows["sent_at"], dtype=np.int64)
        n = len(sent_at)
        how = local_hour_of_week(sent_at, rows["timezone"])
        g = self.global_rate[how]
        seg_lookup = {s: i for i, s in enumerate(self.segments)}
        seg = _index(np.asarray(rows["device"]).astype(str), seg_lookup)
        bucket = _day_bucket(how)
        seg_rate = np.where(seg >= 0, self.segment_rate[np.maximum(seg, 0), bucket], g)

        cust = _index(np.asarray(rows["customer_key"]).astype(str), self.customer_index)
        known = cust >= 0
        safe = np.maximum(cust, 0)
        if len(self.customer_sends):
            sm_s = _smooth_at(self.customer_sends, safe, bucket)
            sm_c = _smooth_at(self.customer_clicks, safe, bucket)
            totals = self.customer_totals[safe].astype(float)
        else:
            sm_s = sm_c = np.zeros(n)
            totals = np.zeros((n, 6))
        code_clicks = self.customer_code_clicks
        if code_clicks is not None and len(code_clicks):
            code_clicks = code_clicks[safe].astype(float)
        else:
            code_clicks = np.zeros(n)
        sm_s, sm_c = np.where(known, sm_s, 0.0), np.where(known, sm_c, 0.0)
        totals = np.where(known[:, None], totals, 0.0)
        code_clicks = np.where(known, code_clicks, 0.0)
        if history_only:
            sm_s, sm_c, totals, code_clicks, previous = _prior_history(rows, how)
        k = self.customer_strength
        cust_rate = (sm_c + k * seg_rate) / (sm_s + k)

        # Customer's recovery rate with a code minus without, each shrunk to the overall.
        base = self.overall_recovery
        with_code = (totals[:, 4] + 5 * base) / (totals[:, 3] + 5)
        without = (totals[:, 5] + 5 * base) / (totals[:, 0] - totals[:, 3] + 5)
        abandoned = np.asarray(rows["abandoned_at"], dtype=float)
        if history_only:
            last, known = previous, np.isfinite(previous)
        else:
            last = self.customer_last[safe] if len(self.customer_last) else np.full(n, -np.inf)
        gap = np.where(known & np.isfinite(last), (abandoned - last) / 86400.0, 365.0)
        gap = np.where(gap <= 0, 365.0, gap)
        channel = np.asarray(rows["channel"]).astype(str)
        device = np.asarray(rows["device"]).astype(str)
        hod = how % 24
        store = np.asarray(rows["store_key"]).astype(str)
        value = np.maximum(np.asarray(rows["cart_value"], float), 0)
        log_value = np.log1p(value)
        hundreds = np.minimum(value / 100.0, MAX_VALUE_HUNDREDS)
        log_hundreds = np.log1p(value / 100.0)
        mobile = (device == "mobile").astype(float)
        evidence = self._code_evidence(totals[:, 1], code_clicks, totals[:, 4], totals[:, 5])
        return {
            "eng_customer": _logit(cust_rate),
            "eng_segment": _logit(seg_rate),
            "eng_global": _logit(g),
            "customer_sends": np.log1p(totals[:, 0]),
            "hod_sin": np.sin(2 * np.pi * hod / 24),
            "hod_cos": np.cos(2 * np.pi * hod / 24),
            "weekend": (how >= 120).astype(float),
            "hours_late": np.maximum(0.0, (sent_at - abandoned) / 3600.0),
            "channel_email": (channel == "email").astype(float),
            "channel_sms": (channel == "sms").astype(float),
            "channel_push": (channel == "push").astype(float),
            "device_mobile": mobile,
            "device_desktop": (device == "desktop").astype(float),
            "log_cart_value": log_value,
            # The recovery's dependence on the cart differs by device: the linear model
            # gets the interaction (the code's own terms are the log ones below).
            "value_hundreds": hundreds,
            "mobile_x_value_hundreds": mobile * hundreds,
            # Uncapped: the log keeps the biggest carts from dominating the code's terms.
            "log_value_hundreds": log_hundreds,
            "mobile_x_log_value_hundreds": mobile * log_hundreds,
            "item_count": np.asarray(rows["item_count"], dtype=float),
            "customer_clicks": np.log1p(totals[:, 1]),
            "customer_recoveries": np.log1p(totals[:, 2]),
            "customer_code_lift": with_code - without,
            "customer_code_evidence": evidence,
            "recency_days": np.log1p(np.minimum(gap, 365.0)),
            "store_rate": np.fromiter((self.stores.get(s, base) for s in store.tolist()), float, n),
            "discount_rate": np.asarray(rows["discount_rate"], dtype=float),
            "variant_b": (np.asarray(rows.get("variant", ["A"] * n)).astype(str) == "B").astype(
                float
            ),
        }

    # -- one cart at scoring time ------------------------------------------------------
    def cart_columns(self, cart: dict, sent_at: np.ndarray) -> dict[str, float | np.ndarray]:
        """The features of one cart (a message-log row without ``sent_at``) at each instant
        of ``sent_at``: the same values as :meth:`columns` gives for those rows
        (tests/test_models.py checks it), computed for delivery's per-message budget. The
        features that do not depend on the instant are Python floats, computed once; those
        that do are arrays over ``sent_at``."""
        sent_at = np.asarray(sent_at, dtype=np.int64)
        how = _hours_of_week_one_zone(sent_at, cart["timezone"])
        bucket = _day_bucket(how)
        tables = self._scoring_tables()
        seg = tables["segments"].get(str(cart["device"]), -1)
        cust = self.customer_index.get(str(cart["customer_key"]), -1)
        base = self.overall_recovery
        k = self.customer_strength
        if cust >= 0 and len(self.customer_sends):
            # The customer's smoothed sends and clicks per day bucket (48 values), pooled
            # toward the segment's bucket rates where the segment is known.
            sm_s = self.customer_sends[cust].astype(float) @ _SMOOTHING
            sm_c = self.customer_clicks[cust].astype(float) @ _SMOOTHING
            if seg >= 0:
                eng_customer = _logit((sm_c + k * self.segment_rate[seg]) / (sm_s + k))[bucket]
            else:
                g = self.global_rate[how]
                eng_customer = _logit((sm_c[bucket] + k * g) / (sm_s[bucket] + k))
            sends, clicks, recoveries, coded, rec_code, rec_none = (
                float(v) for v in self.customer_totals[cust]
            )
            last = float(self.customer_last[cust])
            table = self.customer_code_clicks
            code_clicks = float(table[cust]) if table is not None and len(table) else 0.0
        else:  # no history: the customer's rate is the segment's (or the global one)
            eng_customer = None
            sends = clicks = recoveries = coded = rec_code = rec_none = code_clicks = 0.0
            last = -math.inf
        eng_global = tables["eng_global"][how]
        eng_segment = tables["eng_segment"][seg, bucket] if seg >= 0 else eng_global
        if eng_customer is None:
            rate = self.segment_rate[seg, bucket] if seg >= 0 else self.global_rate[how]
            eng_customer = _logit((k * rate) / k)
        with_code = (rec_code + 5 * base) / (coded + 5)
        without = (rec_none + 5 * base) / (sends - coded + 5)
        abandoned = float(cart["abandoned_at"])
        gap = (abandoned - last) / 86400.0 if cust >= 0 and math.isfinite(last) else 365.0
        gap = 365.0 if gap <= 0 else gap
        channel, device = str(cart["channel"]), str(cart["device"])
        value = max(float(cart["cart_value"]), 0.0)
        log_value = math.log1p(value)
        hundreds = min(value / 100.0, MAX_VALUE_HUNDREDS)
        log_hundreds = math.log1p(value / 100.0)
        mobile = float(device == "mobile")
        evidence = float(self._code_evidence(clicks, code_clicks, rec_code, rec_none))
        return {
            "eng_customer": eng_customer,
            "eng_segment": eng_segment,
            "eng_global": eng_global,
            "customer_sends": math.log1p(sends),
            "hod_sin": tables["hod_sin"][how],
            "hod_cos": tables["hod_cos"][how],
            "weekend": tables["weekend"][how],
            "hours_late": np.maximum(0.0, (sent_at - abandoned) / 3600.0),
            "channel_email": float(channel == "email"),
            "channel_sms": float(channel == "sms"),
            "channel_push": float(channel == "push"),
            "device_mobile": mobile,
            "device_desktop": float(device == "desktop"),
            "log_cart_value": log_value,
            "value_hundreds": hundreds,
            "mobile_x_value_hundreds": mobile * hundreds,
            "log_value_hundreds": log_hundreds,
            "mobile_x_log_value_hundreds": mobile * log_hundreds,
            "item_count": float(cart["item_count"]),
            "customer_clicks": math.log1p(clicks),
            "customer_recoveries": math.log1p(recoveries),
            "customer_code_lift": with_code - without,
            "customer_code_evidence": evidence,
            "recency_days": math.log1p(min(gap, 365.0)),
            "store_rate": self.stores.get(str(cart["store_key"]), base),
            "discount_rate": float(cart["discount_rate"]),
            "variant_b": float(str(cart.get("variant", "A")) == "B"),
        }

    def _code_evidence(self, clicks, code_clicks, rec_code, rec_none):
        if self.customer_code_clicks is None:  # a space fitted before the feature existed
            return 0.0 * clicks
        return code_evidence(
            clicks, code_clicks, rec_code, rec_none, self.code_conversion, self.conversion_strength
        )

    def _scoring_tables(self) -> dict:
        """What :meth:`cart_columns` looks up by local hour of week or segment bucket, made
        once per fitted space (the same expressions as :meth:`columns`, over every hour)."""
        tables = self.__dict__.get("_tables")
        if tables is None:
            how = np.arange(HOURS_OF_WEEK)
            hod = how % 24
            tables = {
                "segments": {s: i for i, s in enumerate(self.segments)},
                "eng_global": _logit(self.global_rate),
                "eng_segment": _logit(self.segment_rate),
                "hod_sin": np.sin(2 * np.pi * hod / 24),
                "hod_cos": np.cos(2 * np.pi * hod / 24),
                "weekend": (how >= 120).astype(float),
            }
            self.__dict__["_tables"] = tables
        return tables

    def matrix(self, rows: dict, names, *, history_only: bool = False) -> np.ndarray:
        """The features ``names`` of ``rows`` as a float matrix (columns in that order)."""
        cols = self.columns(rows, history_only=history_only)
        return np.column_stack([cols[name] for name in names])


def _prior_history(rows: dict, how: np.ndarray):
    """Per row, from the same customer's strictly earlier rows (by ``abandoned_at``): the
    kernel-smoothed sends and clicks at the row's day bucket, the six history totals of
    :attr:`FeatureSpace.customer_totals`, the clicks on coded messages, and the previous
    cart's ``abandoned_at``."""
    n = len(how)
    clicked = np.asarray(rows["clicked"], dtype=float)
    recovered = np.asarray(rows["recovered"], dtype=float)
    coded = (np.asarray(rows["discount_rate"], dtype=float) > 0).astype(float)
    frame = pl.DataFrame(
        {
            "row": np.arange(n),
            "customer": np.asarray(rows["customer_key"]).astype(str),
            "t": np.asarray(rows["abandoned_at"], dtype=np.int64),
            "bucket": _day_bucket(how),
            "clicked": clicked,
            "recovered": recovered,
            "coded": coded,
        }
    ).sort("customer", "t", "row")
    own = ["one", "clicked", "recovered", "coded", "rc", "rn", "kc"]
    frame = frame.with_columns(
        one=pl.lit(1.0),
        rc=pl.col("recovered") * pl.col("coded"),
        rn=pl.col("recovered") * (1 - pl.col("coded")),
        kc=pl.col("clicked") * pl.col("coded"),
    )
    # Exclusive cumulative sums per customer: everything before this row.
    totals = frame.select(
        "row",
        *[(pl.col(c).cum_sum() - pl.col(c)).over("customer").alias(c) for c in own],
        pl.col("t").shift(1).over("customer").alias("previous"),
    ).sort("row")
    events = frame.select(
        "customer",
        "bucket",
        "t",
        pl.col("one").cum_sum().over("customer", "bucket").alias("sends"),
        pl.col("clicked").cum_sum().over("customer", "bucket").alias("clicks"),
    ).sort("t")
    half = len(KERNEL) // 2
    sm_s, sm_c = np.zeros(n), np.zeros(n)
    queries = frame.select("row", "customer", "t", "bucket")
    for offset, weight in zip(range(-half, half + 1), KERNEL, strict=True):
        target = queries.with_columns(
            bucket=pl.col("bucket") - pl.col("bucket") % 24 + (pl.col("bucket") + offset) % 24
        ).sort("t")
        with warnings.catch_warnings():  # sorted by t above; polars cannot see it per group
            warnings.simplefilter("ignore", UserWarning)
            found = target.join_asof(
                events,
                on="t",
                by=["customer", "bucket"],
                strategy="backward",
                allow_exact_matches=False,
            ).sort("row")
        sm_s += weight * found["sends"].fill_null(0).to_numpy()
        sm_c += weight * found["clicks"].fill_null(0).to_numpy()
    previous = totals["previous"].cast(pl.Float64).fill_null(float("-inf")).to_numpy()
    history = totals.select(own).to_numpy().astype(float)
    return sm_s, sm_c, history[:, :6], history[:, 6], previous


def _smooth_at(table: np.ndarray, rows: np.ndarray, bucket: np.ndarray) -> np.ndarray:
    """Kernel-smoothed value of ``table[rows]`` at ``bucket`` (within its 24-hour half)."""
    half = len(KERNEL) // 2
    day = bucket - bucket % 24
    hour = bucket % 24
    out = np.zeros(len(rows))
    for offset, weight in zip(range(-half, half + 1), KERNEL, strict=True):
        out += weight * table[rows, day + (hour + offset) % 24]
    return out


def rows_of(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """A message-log frame as the dict of numpy columns that :meth:`FeatureSpace.matrix`
    takes."""
    return {name: frame[name].to_numpy() for name in frame.columns}


# ---- reading the marts -------------------------------------------------------------------

_MARTS_QUERIES = {
    "messages": """
        SELECT org_id::text AS org_id, message_id::text AS message_id, cart_id::text AS cart_id,
               channel, variant, extract(epoch FROM sent_at)::bigint AS sent_at,
               is_clicked AS clicked
        FROM {marts}.fct_messages
        WHERE is_sent AND NOT is_held_out AND sent_at IS NOT NULL
    """,
    "carts": """
        SELECT c.org_id::text AS org_id, c.cart_id::text AS cart_id,
               c.customer_id::text AS customer_id, c.email,
               c.cart_value::float8 AS cart_value, coalesce(c.item_count, 0)::bigint AS item_count,
               extract(epoch FROM a.abandoned_at)::bigint AS abandoned_at,
               cu.timezone, c.device
        FROM {marts}.fct_carts c
        JOIN {marts}.fct_abandoned_carts a ON a.org_id = c.org_id AND a.cart_id = c.cart_id
        LEFT JOIN {staging}.stg_app__customers cu
          ON cu.org_id = c.org_id AND cu.customer_id = c.customer_id
    """,
    "recoveries": """
        SELECT org_id::text AS org_id, message_id::text AS message_id FROM {marts}.fct_recoveries
        WHERE message_id IS NOT NULL
    """,
    "scoring": """
        SELECT org_id::text AS org_id, message_id::text AS message_id,
               coalesce(discount_offered, false) AS discount_offered,
               send_time_propensity AS propensity,
               coalesce(send_time_explored, false) AS explored,
               coalesce((model_scoring ->> 'discount_rate')::float8, 0) AS discount_rate,
               coalesce(model_scoring ->> 'device', 'unknown') AS device
        FROM app.outbox
    """,
}


def _arrow(conn, query: str):
    with conn.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetch_arrow_table()


def load_messages(database_url: str, schema_prefix: str = "analytics") -> pl.DataFrame:
    """The message log of every org from the marts (sent messages, their click and recovery),
    read through Arrow with ADBC and joined in DuckDB; columns :data:`MESSAGE_COLUMNS`.

    Where the outbox has no scoring record (messages from before migration 0014), the
    propensity is unknown (null) and no discount is assumed."""
    import adbc_driver_postgresql.dbapi as adbc
    import duckdb

    names = {"marts": f"{schema_prefix}_marts", "staging": f"{schema_prefix}_staging"}
    with adbc.connect(_libpq_uri(database_url)) as conn:
        tables = {k: _arrow(conn, q.format(**names)) for k, q in _MARTS_QUERIES.items()}
    db = duckdb.connect()
    for name, table in tables.items():
        db.register(name, table)
    joined = db.sql(
        """
        SELECT m.org_id AS store_key,
               coalesce(c.customer_id, lower(c.email), m.cart_id) AS customer_key,
               m.cart_id AS cart_key, m.channel,
               coalesce(nullif(c.device, 'unknown'), s.device, 'unknown') AS device,
               coalesce(c.timezone, 'UTC') AS timezone, m.variant,
               coalesce(c.cart_value, 0) AS cart_value, c.item_count,
               c.abandoned_at, m.sent_at,
               coalesce(s.discount_offered, false) AS discount_offered,
               coalesce(s.discount_rate, 0) AS discount_rate,
               s.propensity, coalesce(s.explored, false) AS explored,
               coalesce(m.clicked, false) AS clicked,
               r.message_id IS NOT NULL AS recovered
        FROM messages m
        JOIN carts c ON c.org_id = m.org_id AND c.cart_id = m.cart_id
        LEFT JOIN recoveries r ON r.org_id = m.org_id AND r.message_id = m.message_id
        LEFT JOIN scoring s ON s.org_id = m.org_id AND s.message_id = m.message_id
        ORDER BY c.abandoned_at
        """
    ).arrow()
    frame = pl.from_arrow(joined)
    return frame.select([pl.col(k).cast(v) for k, v in MESSAGE_COLUMNS.items()])


def _libpq_uri(url: str) -> str:
    """libpq takes ``postgresql://`` URIs (socket directories as ``?host=``), not SQLAlchemy
    driver suffixes."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url
