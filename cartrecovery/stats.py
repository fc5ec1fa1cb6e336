"""The experiment statistics engine: pure functions over per-arm sufficient statistics.

Conventions follow GrowthBook's open-source engine (gbstats) so results can be compared
with it; every formula is written out in ``docs/statistics.md``. Nothing here touches a
database or the clock: callers pass counts in and get result objects (with ``to_dict()``)
out. Bad *arguments* (negative counts, NaN, unknown options) raise :class:`StatsInputError`;
degenerate but valid *data* (no units, zero variance, zero baseline) returns a neutral
result carrying an error code, never an exception.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import stats as sps

Metric = Literal["proportion", "mean"]
Engine = Literal["frequentist", "sequential", "bayesian"]
TestType = Literal["two_sided", "one_sided_greater", "one_sided_lesser"]
DifferenceType = Literal["relative", "absolute"]

METRICS = ("proportion", "mean")
ENGINES = ("frequentist", "sequential", "bayesian")
TESTS = ("two_sided", "one_sided_greater", "one_sided_lesser")
DIFFERENCE_TYPES = ("relative", "absolute")

DEFAULT_ALPHA = 0.05
DEFAULT_TUNING_PARAMETER = 5000.0
SRM_THRESHOLD = 0.001
# The relative (delta-method) effect on a skewed metric such as revenue per recipient is
# over-confident on small samples: the calibration study (docs/statistics.md) measured the
# sequential test's A/A false positives at 5.9% when read from 500 units per arm, 3.4% when
# the decision waits for 2,000 (at a 5% purchase rate). The decision waits for this many
# units in both arms.
DEFAULT_MIN_UNITS_PER_ARM = 2000

# Error codes of a neutral result; the strings are gbstats' (gbstats/messages.py).
NO_UNITS_IN_VARIATION = "NO_UNITS_IN_VARIATION"
ZERO_NEGATIVE_VARIANCE = "ZERO_NEGATIVE_VARIANCE"
ZERO_NEGATIVE_BASELINE_VARIATION = "ZERO_NEGATIVE_BASELINE_VARIATION"
ALPHA_TOO_BIG_FOR_SEQUENTIAL_ONE_SIDED = "ALPHA_GREATER_THAN_0.5_FOR_SEQUENTIAL_ONE_SIDED_TEST"
# ours: sums so large (or variances so small) that floating point overflows
NUMERICAL_ERROR = "NUMERICAL_ERROR"

# gbstats searches one-sided sequential p-values in this range and reports its ends when the
# answer lies outside; we solve in closed form and clamp to the same range (docs/statistics.md).
SEQUENTIAL_ONE_SIDED_P_RANGE = (1e-5, 0.4999)


class StatsInputError(ValueError):
    """An argument the engine cannot accept (negative count, NaN, unknown option...)."""


def _finite(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise StatsInputError(f"{name} must be a number") from None
    if not math.isfinite(v):
        raise StatsInputError(f"{name} must be a finite number")
    return v


def _choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise StatsInputError(f"{name} must be one of {', '.join(allowed)}")
    return value


def _alpha(value: float, name: str = "alpha") -> float:
    a = _finite(name, value)
    if not 0 < a < 1:
        raise StatsInputError(f"{name} must be between 0 and 1 (exclusive)")
    return a


# ---------------------------------------------------------------------------------------
# Per-arm sufficient statistics
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of one arm: units ``n``, ``sum`` of the metric per unit and,
    for mean metrics, ``sum_squares``. For a proportion ``sum`` counts the converted units
    (so ``0 <= sum <= n``) and ``sum_squares`` is not used."""

    n: int
    sum: float
    sum_squares: float | None = None

    def checked(self, metric: str, name: str = "arm") -> ArmStats:
        n = _finite(f"{name}.n", self.n)
        if n < 0 or n != int(n):
            raise StatsInputError(f"{name}.n must be a whole number >= 0")
        s = _finite(f"{name}.sum", self.sum)
        if metric == "proportion":
            if s < 0 or s > n:
                raise StatsInputError(f"{name}.sum must be between 0 and {name}.n for a proportion")
            return ArmStats(int(n), s, None)
        if self.sum_squares is None:
            raise StatsInputError(f"{name}.sum_squares is required for a mean metric")
        ss = _finite(f"{name}.sum_squares", self.sum_squares)
        if ss < 0:
            raise StatsInputError(f"{name}.sum_squares must be >= 0")
        return ArmStats(int(n), s, ss)

    def mean(self) -> float:
        return self.sum / self.n if self.n else 0.0

    def variance(self, metric: str) -> float:
        """Unit variance: p(1-p) for a proportion, the n-1 sample variance for a mean."""
        if self.n == 0:
            return 0.0
        if metric == "proportion":
            p = self.mean()
            return p * (1 - p)
        if self.n < 2:
            return 0.0
        ss = self.sum_squares or 0.0
        # rounding can make a constant metric's variance a tiny negative number
        return max((ss - self.sum**2 / self.n) / (self.n - 1), 0.0)


@dataclass(frozen=True)
class NormalPrior:
    """A proper normal prior on the effect, stated on the *relative* scale (gbstats'
    ``prior_type="relative"``); it is rescaled by the control mean for absolute effects."""

    mean: float = 0.0
    variance: float = 1.0

    def checked(self) -> NormalPrior:
        m = _finite("prior.mean", self.mean)
        v = _finite("prior.variance", self.variance)
        if v <= 0:
            raise StatsInputError("prior.variance must be > 0")
        return NormalPrior(m, v)


@dataclass(frozen=True)
class CompareSettings:
    engine: Engine = "sequential"
    test: TestType = "two_sided"
    difference_type: DifferenceType = "relative"
    alpha: float = DEFAULT_ALPHA
    sequential_tuning_parameter: float = DEFAULT_TUNING_PARAMETER
    prior: NormalPrior | None = None
    inverse: bool = False

    def checked(self) -> CompareSettings:
        _choice("engine", self.engine, ENGINES)
        _choice("test", self.test, TESTS)
        _choice("difference_type", self.difference_type, DIFFERENCE_TYPES)
        tuning = _finite("sequential_tuning_parameter", self.sequential_tuning_parameter)
        if tuning <= 0:
            raise StatsInputError("sequential_tuning_parameter must be > 0")
        if not isinstance(self.inverse, bool):
            raise StatsInputError("inverse must be true or false")
        if self.engine == "bayesian" and self.test != "two_sided":
            raise StatsInputError("the bayesian engine reports chance to win; use test two_sided")
        return CompareSettings(
            engine=self.engine,
            test=self.test,
            difference_type=self.difference_type,
            alpha=_alpha(self.alpha),
            sequential_tuning_parameter=tuning,
            prior=self.prior.checked() if self.prior is not None else None,
            inverse=self.inverse,
        )


@dataclass(frozen=True)
class EffectResult:
    """Treatment against control. ``ci`` ends may be ``±inf`` (one-sided tests);
    ``to_dict()`` writes those as ``None``. ``p_value`` is set by the frequentist and
    sequential engines, ``chance_to_win`` and ``risk`` (expected loss of shipping control,
    of shipping treatment) by the bayesian one. ``error`` names why a neutral result was
    returned."""

    engine: str
    expected: float
    ci: tuple[float, float]
    uplift_stddev: float
    p_value: float | None = None
    chance_to_win: float | None = None
    risk: tuple[float, float] | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        out: dict = {
            "expected": float(self.expected),
            "ci": [num(self.ci[0]), num(self.ci[1])],
            "uplift_stddev": float(self.uplift_stddev),
        }
        if self.engine in ("frequentist", "sequential"):
            out["p_value"] = None if self.p_value is None else float(self.p_value)
        else:
            out["chance_to_win"] = float(self.chance_to_win if self.chance_to_win else 0.0)
            out["risk"] = [float(r) for r in (self.risk or (0.0, 0.0))]
        if self.error is not None:
            out["error"] = self.error
        return out


def _neutral(settings: CompareSettings, error: str) -> EffectResult:
    if settings.engine == "bayesian":
        return EffectResult("bayesian", 0.0, (0.0, 0.0), 0.0, None, 0.5, (0.0, 0.0), error)
    return EffectResult(settings.engine, 0.0, (0.0, 0.0), 0.0, 1.0, error=error)


# ---------------------------------------------------------------------------------------
# Effect and its standard error
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Moments:
    estimate: float
    variance: float  # of the estimate
    dof: float  # Welch-Satterthwaite


def _moments(metric: str, a: ArmStats, b: ArmStats, relative: bool) -> _Moments | str:
    if a.n == 0 or b.n == 0:
        return NO_UNITS_IN_VARIATION
    mean_a, mean_b = a.mean(), b.mean()
    if relative and mean_a == 0:
        return ZERO_NEGATIVE_BASELINE_VARIATION
    var_a, var_b = a.variance(metric), b.variance(metric)
    if var_a <= 0 or var_b <= 0:
        return ZERO_NEGATIVE_VARIANCE
    if a.n < 2 or b.n < 2:
        return ZERO_NEGATIVE_VARIANCE
    if relative:
        # delta method for (mB - mA) / |mA| with independent arms
        estimate = (mean_b - mean_a) / abs(mean_a)
        variance = var_b / (mean_a**2 * b.n) + var_a * mean_b**2 / (mean_a**4 * a.n)
    else:
        estimate = mean_b - mean_a
        variance = var_b / b.n + var_a / a.n
    dof = (var_b / b.n + var_a / a.n) ** 2 / (
        var_b**2 / (b.n**2 * (b.n - 1)) + var_a**2 / (a.n**2 * (a.n - 1))
    )
    return _Moments(estimate, variance, dof)


# ---------------------------------------------------------------------------------------
# Frequentist: Welch's t-test
# ---------------------------------------------------------------------------------------


def _frequentist(m: _Moments, s: CompareSettings) -> EffectResult:
    se = math.sqrt(m.variance)
    t = m.estimate / se
    if s.test == "two_sided":
        p = 2 * sps.t.sf(abs(t), m.dof)
        w = sps.t.ppf(1 - s.alpha / 2, m.dof) * se
        ci = (m.estimate - w, m.estimate + w)
    elif s.test == "one_sided_greater":
        p = sps.t.sf(t, m.dof)
        ci = (m.estimate - sps.t.ppf(1 - s.alpha, m.dof) * se, math.inf)
    else:
        p = sps.t.cdf(t, m.dof)
        ci = (-math.inf, m.estimate + sps.t.ppf(1 - s.alpha, m.dof) * se)
    return EffectResult("frequentist", m.estimate, ci, se, float(p))


# ---------------------------------------------------------------------------------------
# Sequential: asymptotic confidence sequences (Waudby-Smith et al. 2023)
# ---------------------------------------------------------------------------------------


def sequential_rho(alpha: float, tuning_parameter: float, two_sided: bool = True) -> float:
    """Mixing parameter ρ tuned so the sequence is tightest near ``tuning_parameter`` units
    (eq. 161 of the paper; one-sided sequences use 2α in it, as gbstats does)."""
    a = alpha if two_sided else 2 * alpha
    return math.sqrt((-2 * math.log(a) + math.log(-2 * math.log(a) + 1)) / tuning_parameter)


def sequential_halfwidth(s2: float, n: float, alpha: float, rho: float, two_sided: bool) -> float:
    """Half-width of the confidence sequence for per-unit variance ``s2`` after ``n`` units."""
    nr2 = n * rho**2
    if two_sided:
        return (
            math.sqrt(s2)
            * math.sqrt(2 * (nr2 + 1) * math.log(math.sqrt(nr2 + 1) / alpha))
            / (n * rho)
        )
    return math.sqrt(
        s2 * 2 * (nr2 + 1) / (n * rho) ** 2 * math.log(1 + math.sqrt(nr2 + 1) / (2 * alpha))
    )


def _sequential(m: _Moments, s: CompareSettings, n: int) -> EffectResult:
    se = math.sqrt(m.variance)
    two_sided = s.test == "two_sided"
    if not two_sided and s.alpha >= 0.5:
        return _neutral(s, ALPHA_TOO_BIG_FOR_SEQUENTIAL_ONE_SIDED)
    rho = sequential_rho(s.alpha, s.sequential_tuning_parameter, two_sided)
    # the paper's per-observation variance; n counts both arms (gbstats convention)
    s2 = m.variance * n
    hw = sequential_halfwidth(s2, n, s.alpha, rho, two_sided)
    nr2p1 = n * rho**2 + 1
    if two_sided:
        # always-valid p-value = 1 / e-value (eq. 155)
        st2 = n * m.estimate**2 / m.variance  # (S_n / sigma)^2 in the paper's notation
        log_e = rho**2 * st2 / (2 * nr2p1) - 0.5 * math.log(nr2p1)
        p = min(1.0, math.exp(-log_e)) if log_e > -700 else 1.0
        return EffectResult("sequential", m.estimate, (m.estimate - hw, m.estimate + hw), se, p)
    # One-sided: the smallest α (ρ fixed) whose bound excludes 0. gbstats bisects for it;
    # solving hw(α) = effect gives α = sqrt(nρ²+1) / (2 (e^L - 1)).
    toward = m.estimate if s.test == "one_sided_greater" else -m.estimate
    lo, hi = SEQUENTIAL_ONE_SIDED_P_RANGE
    if toward <= 0:
        p = hi
    else:
        big_l = toward**2 * (n * rho) ** 2 / (s2 * 2 * nr2p1)
        p = math.sqrt(nr2p1) / (2 * math.expm1(big_l)) if big_l < 700 else 0.0
        p = min(max(p, lo), hi)
    if s.test == "one_sided_greater":
        ci = (m.estimate - hw, math.inf)
    else:
        ci = (-math.inf, m.estimate + hw)
    return EffectResult("sequential", m.estimate, ci, se, p)


# ---------------------------------------------------------------------------------------
# Bayesian: normal likelihood on the effect, flat or proper normal prior
# ---------------------------------------------------------------------------------------


def normal_risk(mu: float, sigma: float) -> tuple[float, float]:
    """Expected loss of shipping control, E[max(δ,0)], and of shipping treatment,
    E[max(-δ,0)], for δ ~ N(mu, sigma²); equals gbstats' truncated-normal form."""
    z = mu / sigma
    gain = mu * sps.norm.cdf(z) + sigma * sps.norm.pdf(z)
    loss = -mu * sps.norm.cdf(-z) + sigma * sps.norm.pdf(z)
    return float(max(gain, 0.0)), float(max(loss, 0.0))


def _bayesian(m: _Moments, s: CompareSettings, control_mean: float) -> EffectResult:
    mean, var = m.estimate, m.variance
    if s.prior is not None:
        prior_mean, prior_var = s.prior.mean, s.prior.variance
        if s.difference_type == "absolute":
            prior_mean *= abs(control_mean)
            prior_var *= control_mean**2
        if prior_var > 0:
            precision = 1 / var + 1 / prior_var
            mean = (m.estimate / var + prior_mean / prior_var) / precision
            var = 1 / precision
    sd = math.sqrt(var)
    ctw = float(sps.norm.sf(0, mean, sd))
    risk = normal_risk(mean, sd)
    if s.inverse:
        ctw, risk = 1 - ctw, (risk[1], risk[0])
    lo, hi = sps.norm.ppf([s.alpha / 2, 1 - s.alpha / 2], mean, sd)
    return EffectResult("bayesian", mean, (float(lo), float(hi)), sd, None, ctw, risk)


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------


def compare(
    metric: Metric,
    control: ArmStats,
    treatment: ArmStats,
    settings: CompareSettings | None = None,
) -> EffectResult:
    """Effect of ``treatment`` against ``control`` with the engine named in ``settings``
    (sequential, two-sided, relative, α = 0.05 by default)."""
    _choice("metric", metric, METRICS)
    s = (settings or CompareSettings()).checked()
    a = control.checked(metric, "control")
    b = treatment.checked(metric, "treatment")
    try:
        m = _moments(metric, a, b, s.difference_type == "relative")
        if isinstance(m, str):
            return _neutral(s, m)
        if s.engine == "frequentist":
            r = _frequentist(m, s)
        elif s.engine == "sequential":
            r = _sequential(m, s, a.n + b.n)
        else:
            r = _bayesian(m, s, a.mean())
    except (OverflowError, ZeroDivisionError, ValueError):
        return _neutral(s, NUMERICAL_ERROR)
    return r if _all_finite(r) else _neutral(s, NUMERICAL_ERROR)


def _all_finite(r: EffectResult) -> bool:
    values = [r.expected, r.uplift_stddev, *(r.risk or ())]
    values += [x for x in (r.p_value, r.chance_to_win) if x is not None]
    # an interval end may be infinite (one-sided tests), never NaN
    return all(math.isfinite(v) for v in values) and not any(math.isnan(c) for c in r.ci)


# ---------------------------------------------------------------------------------------
# Sample ratio mismatch and multiple comparisons
# ---------------------------------------------------------------------------------------


def srm_p_value(users: Sequence[float], weights: Sequence[float]) -> float:
    """Pearson chi-square goodness of fit of the units per variation against the configured
    weights. Variations with weight 0 or no units are dropped (GrowthBook's convention);
    with fewer than two left there is nothing to test and the p-value is 1."""
    if len(users) != len(weights):
        raise StatsInputError("users and weights must have the same length")
    pairs = []
    for i, (u, w) in enumerate(zip(users, weights, strict=True)):
        uu, ww = _finite(f"users[{i}]", u), _finite(f"weights[{i}]", w)
        if uu < 0 or ww < 0:
            raise StatsInputError("users and weights must be >= 0")
        if uu > 0 and ww > 0:
            pairs.append((uu, ww))
    if len(pairs) < 2:
        return 1.0
    observed = np.array([p[0] for p in pairs])
    share = np.array([p[1] for p in pairs])
    share = share / share.max()  # so their sum cannot overflow
    with np.errstate(all="ignore"):
        expected = share / share.sum() * observed.sum()
        try:
            p = float(sps.chisquare(observed, expected).pvalue)
        except ValueError:  # totals that no longer agree after overflow or underflow
            p = math.nan
    if not math.isfinite(p):
        raise StatsInputError("users or weights too large or too small to compare")
    return p


def adjust_p_values(p_values: Sequence[float], method: Literal["holm", "bh"]) -> list[float]:
    """Holm–Bonferroni (family-wise error) or Benjamini–Hochberg (false discovery rate)
    adjusted p-values, in input order. Pass every variant × goal metric of one result view."""
    _choice("method", method, ("holm", "bh"))
    ps = np.array([_finite(f"p_values[{i}]", p) for i, p in enumerate(p_values)], dtype=float)
    if ((ps < 0) | (ps > 1)).any():
        raise StatsInputError("p-values must be between 0 and 1")
    if ps.size == 0:
        return []
    if method == "bh":
        return [float(x) for x in sps.false_discovery_control(ps, method="bh")]
    m = ps.size
    order = np.argsort(ps, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * ps[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return [float(x) for x in adjusted]


# ---------------------------------------------------------------------------------------
# Sample size
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleSize:
    units_per_arm: int
    total_units: int
    alpha_per_comparison: float

    def to_dict(self) -> dict:
        return {
            "units_per_arm": self.units_per_arm,
            "total_units": self.total_units,
            "alpha_per_comparison": self.alpha_per_comparison,
        }


def sample_size(
    baseline: float,
    minimum_detectable_effect: float,
    **options,
) -> SampleSize:
    """Units per arm so each treatment-vs-control comparison detects the effect with the
    given power. With more than two arms α is split (Bonferroni) over the ``arms - 1``
    comparisons. The sequential engine's wider interval needs more units: the smallest n
    whose final look crosses the sequence's boundary with the given power. Options:
    ``alpha`` (0.05), ``power`` (0.8), ``arms`` (2), ``metric`` (``proportion`` or ``mean``
    with ``baseline_stddev``), ``mde_type`` (``relative``), ``test`` (``two_sided``),
    ``engine`` (``frequentist`` or ``sequential``), ``sequential_tuning_parameter``."""
    try:
        return _sample_size(baseline, minimum_detectable_effect, **options)
    except (OverflowError, ZeroDivisionError):
        raise StatsInputError("the numbers are too extreme for a sample size") from None


def _sample_size(
    baseline: float,
    minimum_detectable_effect: float,
    *,
    alpha: float = DEFAULT_ALPHA,
    power: float = 0.8,
    arms: int = 2,
    metric: Metric = "proportion",
    baseline_stddev: float | None = None,
    mde_type: DifferenceType = "relative",
    test: TestType = "two_sided",
    engine: Literal["frequentist", "sequential"] = "frequentist",
    sequential_tuning_parameter: float = DEFAULT_TUNING_PARAMETER,
) -> SampleSize:
    _choice("metric", metric, METRICS)
    _choice("mde_type", mde_type, DIFFERENCE_TYPES)
    _choice("test", test, TESTS)
    _choice("engine", engine, ("frequentist", "sequential"))
    base = _finite("baseline", baseline)
    mde = _finite("minimum_detectable_effect", minimum_detectable_effect)
    a = _alpha(alpha)
    pw = _alpha(power, "power")
    if not isinstance(arms, int) or isinstance(arms, bool) or arms < 2:
        raise StatsInputError("arms must be a whole number >= 2")
    if mde == 0:
        raise StatsInputError("minimum_detectable_effect must not be 0")
    delta = mde * abs(base) if mde_type == "relative" else mde
    if metric == "proportion":
        p2 = base + delta
        if not 0 < base < 1 or not 0 < p2 < 1:
            raise StatsInputError("baseline and baseline + effect must be rates between 0 and 1")
        var_sum = base * (1 - base) + p2 * (1 - p2)
    else:
        if baseline_stddev is None:
            raise StatsInputError("baseline_stddev is required for a mean metric")
        sd = _finite("baseline_stddev", baseline_stddev)
        if sd <= 0:
            raise StatsInputError("baseline_stddev must be > 0")
        var_sum = 2 * sd**2
    if mde_type == "relative" and base == 0:
        raise StatsInputError("a relative effect needs a baseline other than 0")
    n = _units_per_arm(
        var_sum, delta, a / (arms - 1), pw, test, engine, sequential_tuning_parameter
    )
    return SampleSize(n, n * arms, a / (arms - 1))


def _units_per_arm(
    var_sum: float,
    delta: float,
    a_cmp: float,
    pw: float,
    test: str,
    engine: str,
    sequential_tuning_parameter: float,
) -> int:
    if not (math.isfinite(var_sum) and math.isfinite(delta)):
        # e.g. a baseline of 1e300 times a relative effect overflows: no n answers that
        raise StatsInputError("the numbers are too extreme for a sample size")
    two_sided = test == "two_sided"
    z_b = float(sps.norm.ppf(pw))
    if engine == "frequentist":
        z_a = float(sps.norm.ppf(1 - a_cmp / 2 if two_sided else 1 - a_cmp))
        n = math.ceil((z_a + z_b) ** 2 * var_sum / delta**2)
    else:
        tuning = _finite("sequential_tuning_parameter", sequential_tuning_parameter)
        if tuning <= 0:
            raise StatsInputError("sequential_tuning_parameter must be > 0")
        if not two_sided and a_cmp >= 0.5:
            raise StatsInputError("alpha must be below 0.5 for a one-sided sequential test")
        rho = sequential_rho(a_cmp, tuning, two_sided)

        def enough(k: int) -> bool:
            se = math.sqrt(var_sum / k)
            hw = sequential_halfwidth(se**2 * 2 * k, 2 * k, a_cmp, rho, two_sided)
            return abs(delta) - hw >= z_b * se

        hi = 2
        while not enough(hi):
            hi *= 2
            if hi > 2**50:
                raise StatsInputError("effect too small for any practical sample size")
        lo = hi // 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if enough(mid) else (mid, hi)
        n = hi
    return max(n, 2)


# ---------------------------------------------------------------------------------------
# Assignment and bandit allocation (called by delivery)
# ---------------------------------------------------------------------------------------


def _unit_hash(*parts: str) -> float:
    """A uniform number in [0, 1) from the parts; sha256 so it is stable across processes,
    machines and Python versions (``hash()`` is salted per process)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Assignment:
    variant: int | None  # index into the weights; None when held out
    held_out: bool


def assign(
    org_id: str,
    experiment_key: str,
    customer_key: str,
    weights: Sequence[float],
    holdout_share: float = 0.0,
) -> Assignment:
    """Deterministic variant for a customer: the same (org, experiment, customer) always
    gets the same answer, so every cart of a customer sees one variant. The holdout draw
    uses its own hash, so changing the holdout share does not move customers between
    variants, and changing the weights does not move them in or out of the holdout."""
    ws = [_finite(f"weights[{i}]", w) for i, w in enumerate(weights)]
    if not ws or any(w < 0 for w in ws) or sum(ws) <= 0:
        raise StatsInputError("weights must be >= 0 with a positive total")
    h = _finite("holdout_share", holdout_share)
    if not 0 <= h < 1:
        raise StatsInputError("holdout_share must be in [0, 1)")
    key = (str(org_id), str(experiment_key), str(customer_key))
    if h > 0 and _unit_hash("holdout", *key) < h:
        return Assignment(None, True)
    u = _unit_hash("variant", *key) * sum(ws)
    cumulative = 0.0
    last = max(i for i, w in enumerate(ws) if w > 0)
    for i, w in enumerate(ws):
        cumulative += w
        if w > 0 and u < cumulative:
            return Assignment(i, False)
    return Assignment(last, False)


@dataclass(frozen=True)
class BanditAllocation:
    weights: list[float]
    probability_best: list[float]

    def to_dict(self) -> dict:
        return {"weights": self.weights, "probability_best": self.probability_best}


def thompson_allocation(
    successes: Sequence[int],
    trials: Sequence[int],
    *,
    min_share: float = 0.05,
    draws: int = 20_000,
    seed: int = 0,
) -> BanditAllocation:
    """Traffic weights by Thompson sampling over Beta(1 + successes, 1 + failures)
    posteriors: each arm's probability of being best, estimated from ``draws`` posterior
    draws with a fixed ``seed`` (so the function is pure), then mixed with the uniform
    floor so every arm keeps at least ``min_share``."""
    k = len(trials)
    if k < 2 or len(successes) != k:
        raise StatsInputError("need successes and trials for at least two arms")
    ms = _finite("min_share", min_share)
    if not 0 <= ms <= 1 / k:
        raise StatsInputError(f"min_share must be between 0 and 1/{k}")
    if not isinstance(draws, int) or draws < 1:
        raise StatsInputError("draws must be a positive whole number")
    succ = np.array([_finite(f"successes[{i}]", x) for i, x in enumerate(successes)])
    n = np.array([_finite(f"trials[{i}]", x) for i, x in enumerate(trials)])
    if (succ < 0).any() or (succ > n).any():
        raise StatsInputError("successes must be between 0 and trials")
    rng = np.random.default_rng(seed)
    samples = rng.beta(1 + succ, 1 + n - succ, size=(draws, k))
    best = np.bincount(samples.argmax(axis=1), minlength=k) / draws
    weights = ms + (1 - k * ms) * best
    return BanditAllocation([float(w) for w in weights], [float(b) for b in best])


# ---------------------------------------------------------------------------------------
# Plain-words decision
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantResult:
    """One treatment's result on the goal metric, with the p-value after correction and
    ``units``, the smaller of its own and control's unit counts."""

    name: str
    result: EffectResult
    adjusted_p_value: float | None = None
    guardrails_breached: tuple[str, ...] = field(default_factory=tuple)
    units: int | None = None


@dataclass(frozen=True)
class Decision:
    action: Literal["keep_running", "ship", "stop_no_difference", "check_setup"]
    variant: str | None
    reason: str

    def label(self) -> str:
        return f"ship {self.variant}" if self.action == "ship" else self.action

    def to_dict(self) -> dict:
        return {"decision": self.label(), "variant": self.variant, "reason": self.reason}


def guardrail_breached(result: EffectResult, alpha: float = DEFAULT_ALPHA) -> bool:
    """A guardrail (unsubscribe, complaint, bounce rate, discount cost; compared with
    ``inverse=True`` because higher is worse) is breached when the treatment is
    significantly worse: p below α with the harm side of the interval excluding 0, or a
    chance to win below α for the bayesian engine."""
    if result.error is not None:
        return False
    if result.engine == "bayesian":
        return (result.chance_to_win or 0.5) < alpha
    return (result.p_value or 1.0) < alpha and result.ci[0] > 0


def decide(
    control_name: str,
    variants: Sequence[VariantResult],
    *,
    srm_p: float,
    alpha: float = DEFAULT_ALPHA,
    win_probability: float = 0.95,
    inverse: bool = False,
    practical_effect: float | None = None,
    min_units_per_arm: int = DEFAULT_MIN_UNITS_PER_ARM,
) -> Decision:
    """The decision shown to a marketer, in this order: ``check_setup`` on a sample ratio
    mismatch; ``ship <variant>`` when a treatment beats control (adjusted p < α for the
    frequentist and sequential engines, chance to win >= ``win_probability`` for the
    bayesian one) without breaching a guardrail, or ``ship <control>`` when every
    treatment is significantly worse; ``stop_no_difference`` when every treatment's
    interval lies inside ±``practical_effect``; otherwise ``keep_running``. A variant
    whose ``units`` are below ``min_units_per_arm`` is not judged yet."""
    if srm_p < SRM_THRESHOLD:
        return Decision(
            "check_setup",
            None,
            f"The traffic split does not match the configured weights (SRM p = {srm_p:.2g}); "
            "results cannot be trusted until the assignment is fixed.",
        )
    usable = [
        v
        for v in variants
        if v.result.error is None and (v.units is None or v.units >= min_units_per_arm)
    ]
    if not usable:
        return Decision("keep_running", None, "Not enough data to compare the variants yet.")

    def better(v: VariantResult) -> bool:
        r = v.result
        if r.engine == "bayesian":
            return (r.chance_to_win or 0) >= win_probability
        p = v.adjusted_p_value if v.adjusted_p_value is not None else r.p_value
        good = r.ci[0] > 0 if not inverse else r.ci[1] < 0
        return p is not None and p < alpha and good

    def worse(v: VariantResult) -> bool:
        r = v.result
        if r.engine == "bayesian":
            return (r.chance_to_win or 0) <= 1 - win_probability
        p = v.adjusted_p_value if v.adjusted_p_value is not None else r.p_value
        bad = r.ci[1] < 0 if not inverse else r.ci[0] > 0
        return p is not None and p < alpha and bad

    winners = [v for v in usable if better(v)]
    clean = [v for v in winners if not v.guardrails_breached]
    if clean:
        sign = -1 if inverse else 1
        top = max(clean, key=lambda v: sign * v.result.expected)
        return Decision(
            "ship",
            top.name,
            f"{top.name} beats {control_name} by {top.result.expected:+.3g} "
            f"({top.result.engine}), with no guardrail breached.",
        )
    if winners:
        names = ", ".join(f"{v.name} ({', '.join(v.guardrails_breached)})" for v in winners)
        return Decision("keep_running", None, f"A variant leads but breaches a guardrail: {names}.")
    if len(usable) == len(variants) and all(worse(v) for v in usable):
        return Decision(
            "ship", control_name, f"Every variant does worse than {control_name}; keep it."
        )
    if practical_effect is not None and all(
        -practical_effect < v.result.ci[0] and v.result.ci[1] < practical_effect for v in usable
    ):
        return Decision(
            "stop_no_difference",
            None,
            f"Every variant is within ±{practical_effect:g} of {control_name}; "
            "the difference is too small to matter.",
        )
    return Decision("keep_running", None, "No variant is ahead with enough certainty yet.")


# ---------------------------------------------------------------------------------------
# A whole result view: what the results endpoint shows for one experiment
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """A metric of the view. Goals (the first is the primary one the decision is made on)
    are corrected together; guardrails are higher-is-worse rates or costs, checked one by
    one. ``inverse`` marks a goal where lower is better. A money metric must be in one
    currency: the caller never adds amounts across currencies."""

    key: str
    metric: Metric
    role: Literal["goal", "guardrail"] = "goal"
    inverse: bool = False


@dataclass(frozen=True)
class Variation:
    """One arm: its configured weight, the units assigned to it (for SRM) and the
    sufficient statistics of every metric of the view, by metric key."""

    name: str
    weight: float
    units: int
    metrics: dict[str, ArmStats]


@dataclass(frozen=True)
class MetricComparison:
    variation: str
    metric: str
    role: str
    result: EffectResult
    adjusted_p_value: float | None

    def to_dict(self) -> dict:
        out = {"variation": self.variation, "metric": self.metric, "role": self.role}
        out.update(self.result.to_dict())
        if self.adjusted_p_value is not None:
            out["adjusted_p_value"] = self.adjusted_p_value
        if self.role == "guardrail":
            out["breached"] = guardrail_breached(self.result)
        return out


@dataclass(frozen=True)
class ExperimentResult:
    engine: str
    srm_p_value: float
    comparisons: list[MetricComparison]
    decision: Decision
    correction: str | None

    def to_dict(self) -> dict:
        return {
            "engine": self.engine,
            "srm": {"p_value": self.srm_p_value, "mismatch": self.srm_p_value < SRM_THRESHOLD},
            "correction": self.correction,
            "comparisons": [c.to_dict() for c in self.comparisons],
            **self.decision.to_dict(),
        }


def analyze_experiment(
    variations: Sequence[Variation],
    metrics: Sequence[MetricSpec],
    settings: CompareSettings | None = None,
    *,
    correction: Literal["holm", "bh"] | None = "holm",
    win_probability: float = 0.95,
    practical_effect: float | None = None,
    min_units_per_arm: int = DEFAULT_MIN_UNITS_PER_ARM,
) -> ExperimentResult:
    """Every treatment (``variations[1:]``) against control (``variations[0]``) on every
    metric, SRM over the assigned units, goal p-values corrected over treatments × goals,
    guardrails checked, and the plain-words decision on the first goal metric."""
    if len(variations) < 2:
        raise StatsInputError("an experiment needs a control and at least one treatment")
    goals = [m for m in metrics if m.role == "goal"]
    if not goals:
        raise StatsInputError("an experiment needs at least one goal metric")
    for m in metrics:
        _choice("role", m.role, ("goal", "guardrail"))
        for v in variations:
            if m.key not in v.metrics:
                raise StatsInputError(f"variation {v.name} has no statistics for {m.key}")
    base = (settings or CompareSettings()).checked()
    control = variations[0]
    srm = srm_p_value([v.units for v in variations], [v.weight for v in variations])

    raw: list[tuple[Variation, MetricSpec, EffectResult]] = []
    for v in variations[1:]:
        for m in metrics:
            inverse = True if m.role == "guardrail" else m.inverse
            s = CompareSettings(
                engine=base.engine,
                test=base.test,
                difference_type=base.difference_type,
                alpha=base.alpha,
                sequential_tuning_parameter=base.sequential_tuning_parameter,
                prior=base.prior,
                inverse=inverse,
            )
            raw.append((v, m, compare(m.metric, control.metrics[m.key], v.metrics[m.key], s)))

    adjusted: dict[int, float] = {}
    family = [
        i
        for i, (_, m, r) in enumerate(raw)
        if m.role == "goal" and r.p_value is not None and r.error is None
    ]
    if correction is not None and family:
        values = adjust_p_values([raw[i][2].p_value for i in family], correction)
        adjusted = dict(zip(family, values, strict=True))

    comparisons = [
        MetricComparison(v.name, m.key, m.role, r, adjusted.get(i))
        for i, (v, m, r) in enumerate(raw)
    ]
    primary = goals[0]
    candidates = []
    for c, (v, _m, _r) in zip(comparisons, raw, strict=True):
        if c.metric != primary.key:
            continue
        breached = tuple(
            g.metric
            for g in comparisons
            if g.variation == v.name and g.role == "guardrail" and guardrail_breached(g.result)
        )
        units = min(control.metrics[primary.key].n, v.metrics[primary.key].n)
        candidates.append(
            VariantResult(v.name, c.result, c.adjusted_p_value, breached, units=units)
        )
    decision = decide(
        control.name,
        candidates,
        srm_p=srm,
        alpha=base.alpha,
        win_probability=win_probability,
        inverse=primary.inverse,
        practical_effect=practical_effect,
        min_units_per_arm=min_units_per_arm,
    )
    return ExperimentResult(base.engine, srm, comparisons, decision, correction)
