"""The statistics engine against references computed here, independently of its helpers:
scipy on unit-level data, closed forms written out in the test, numerical integration."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as settings_hyp
from hypothesis import strategies as st
from scipy import integrate
from scipy import stats as sps
from scipy.optimize import brentq

from cartrecovery import stats
from cartrecovery.stats import ArmStats, CompareSettings, NormalPrior

# --- data -------------------------------------------------------------------------------

RNG = np.random.default_rng(20261206)
REVENUE_A = RNG.gamma(shape=0.6, scale=40.0, size=4000)  # revenue per recipient, skewed
REVENUE_B = RNG.gamma(shape=0.6, scale=44.0, size=3700)


def arm_of(values: np.ndarray) -> ArmStats:
    return ArmStats(len(values), float(values.sum()), float((values**2).sum()))


CONV_A = ArmStats(10_000, 500)  # 5.0%
CONV_B = ArmStats(9_800, 560)  # 5.71%


def proportion_moments(a: ArmStats, b: ArmStats):
    """Unit variance p(1-p) per arm (gbstats' proportion convention)."""
    pa, pb = a.sum / a.n, b.sum / b.n
    return pa, pb, pa * (1 - pa), pb * (1 - pb)


def welch_dof(va, na, vb, nb):
    return (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))


def relative_variance_numeric(ma, va, na, mb, vb, nb):
    """Delta method by a numerical gradient of g(ma, mb) = (mb - ma) / ma."""
    h = 1e-6

    def g(x, y):
        return (y - x) / x

    da = (g(ma + h, mb) - g(ma - h, mb)) / (2 * h)
    db = (g(ma, mb + h) - g(ma, mb - h)) / (2 * h)
    return da**2 * va / na + db**2 * vb / nb


def settings(**kw) -> CompareSettings:
    return CompareSettings(**kw)


# --- frequentist ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("test", "alternative"),
    [("two_sided", "two-sided"), ("one_sided_greater", "greater"), ("one_sided_lesser", "less")],
)
def test_frequentist_absolute_mean_matches_scipy_welch_on_unit_data(test, alternative):
    r = stats.compare(
        "mean",
        arm_of(REVENUE_A),
        arm_of(REVENUE_B),
        settings(engine="frequentist", test=test, difference_type="absolute"),
    )
    ref = sps.ttest_ind(REVENUE_B, REVENUE_A, equal_var=False, alternative=alternative)
    ci = ref.confidence_interval(0.95)
    assert r.expected == pytest.approx(REVENUE_B.mean() - REVENUE_A.mean(), rel=1e-9)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-7)
    assert r.ci[0] == pytest.approx(ci.low, rel=1e-7)
    assert r.ci[1] == pytest.approx(ci.high, rel=1e-7)
    se = math.sqrt(REVENUE_A.var(ddof=1) / 4000 + REVENUE_B.var(ddof=1) / 3700)
    assert r.uplift_stddev == pytest.approx(se, rel=1e-9)


def test_frequentist_relative_proportion_closed_form():
    pa, pb, va, vb = proportion_moments(CONV_A, CONV_B)
    est = (pb - pa) / pa
    var = relative_variance_numeric(pa, va, CONV_A.n, pb, vb, CONV_B.n)
    dof = welch_dof(va, CONV_A.n, vb, CONV_B.n)
    for alpha in (0.05, 0.1):
        r = stats.compare("proportion", CONV_A, CONV_B, settings(engine="frequentist", alpha=alpha))
        se = math.sqrt(var)
        assert r.expected == pytest.approx(est, rel=1e-12)
        assert r.uplift_stddev == pytest.approx(se, rel=1e-6)
        assert r.p_value == pytest.approx(2 * sps.t.sf(abs(est / se), dof), rel=1e-5)
        half = sps.t.ppf(1 - alpha / 2, dof) * se
        assert r.ci == pytest.approx((est - half, est + half), rel=1e-6)


def test_frequentist_one_sided_relative_and_unbounded_end():
    pa, pb, va, vb = proportion_moments(CONV_A, CONV_B)
    est = (pb - pa) / pa
    se = math.sqrt(relative_variance_numeric(pa, va, CONV_A.n, pb, vb, CONV_B.n))
    dof = welch_dof(va, CONV_A.n, vb, CONV_B.n)
    g = stats.compare(
        "proportion", CONV_A, CONV_B, settings(engine="frequentist", test="one_sided_greater")
    )
    lesser = stats.compare(
        "proportion", CONV_A, CONV_B, settings(engine="frequentist", test="one_sided_lesser")
    )
    assert g.p_value == pytest.approx(sps.t.sf(est / se, dof), rel=1e-5)
    assert lesser.p_value == pytest.approx(sps.t.cdf(est / se, dof), rel=1e-5)
    assert g.p_value + lesser.p_value == pytest.approx(1.0)
    assert g.ci[1] == math.inf and lesser.ci[0] == -math.inf
    assert g.ci[0] == pytest.approx(est - sps.t.ppf(0.95, dof) * se, rel=1e-6)
    assert g.to_dict()["ci"][1] is None and lesser.to_dict()["ci"][0] is None


def test_relative_uses_absolute_value_of_a_negative_baseline():
    a = ArmStats(3, -6.0, 14.0)  # values -1, -2, -3
    b = ArmStats(3, -3.0, 5.0)  # values 0, -1, -2
    r = stats.compare("mean", a, b, settings(engine="frequentist"))
    assert r.expected == pytest.approx((-1 - -2) / 2)
    assert r.error is None


# --- sequential -------------------------------------------------------------------------


def rho_of(alpha, n_star):
    return math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / n_star)


def mixture_e_value(estimate, se, n, rho):
    """Normal-mixture martingale (Robbins) with mixing N(0, rho^2), integrated numerically:
    E = integral of exp(lam * S - lam^2 n / 2) phi(lam; 0, rho) where S = sum / sigma."""
    s = estimate * math.sqrt(n) / se

    def f(lam):
        return math.exp(lam * s - lam**2 * n / 2) * sps.norm.pdf(lam, 0, rho)

    # the integrand is a bump around s / n; integrate there for accuracy
    centre, width = s / (n + 1 / rho**2), 12 / math.sqrt(n + 1 / rho**2)
    return integrate.quad(f, centre - width, centre + width, epsabs=0, epsrel=1e-10, limit=200)[0]


@pytest.mark.parametrize("n_star", [5000, 500])
def test_sequential_two_sided_against_the_mixture_martingale(n_star):
    a, b = ArmStats(4000, 200), ArmStats(4000, 252)
    r = stats.compare(
        "proportion",
        a,
        b,
        settings(
            engine="sequential", difference_type="absolute", sequential_tuning_parameter=n_star
        ),
    )
    pa, pb, va, vb = proportion_moments(a, b)
    est, se, n = pb - pa, math.sqrt(va / a.n + vb / b.n), a.n + b.n
    rho = rho_of(0.05, n_star)
    assert r.p_value == pytest.approx(min(1.0, 1 / mixture_e_value(est, se, n, rho)), rel=1e-6)
    # the interval is the set of effects the test does not reject: its ends have E = 1/alpha
    for end in r.ci:
        assert mixture_e_value(est - end, se, n, rho) == pytest.approx(1 / 0.05, rel=1e-6)
    assert r.uplift_stddev == pytest.approx(se)
    fixed = stats.compare(
        "proportion", a, b, settings(engine="frequentist", difference_type="absolute")
    )
    assert r.ci[0] < fixed.ci[0] and r.ci[1] > fixed.ci[1]  # the price of peeking
    assert r.p_value > fixed.p_value


def test_sequential_relative_two_sided_closed_form():
    r = stats.compare("mean", arm_of(REVENUE_A), arm_of(REVENUE_B), settings(engine="sequential"))
    ma, mb = REVENUE_A.mean(), REVENUE_B.mean()
    va, vb = REVENUE_A.var(ddof=1), REVENUE_B.var(ddof=1)
    var = relative_variance_numeric(ma, va, 4000, mb, vb, 3700)
    n = 7700
    rho = rho_of(0.05, 5000)
    s2 = var * n
    half = math.sqrt(
        s2 * 2 * (n * rho**2 + 1) / (n * rho) ** 2 * math.log(math.sqrt(n * rho**2 + 1) / 0.05)
    )
    assert r.expected == pytest.approx((mb - ma) / ma, rel=1e-9)
    assert r.ci[1] - r.expected == pytest.approx(half, rel=1e-5)
    assert r.p_value == pytest.approx(
        min(1.0, 1 / mixture_e_value(r.expected, math.sqrt(var), n, rho)), rel=1e-5
    )


@pytest.mark.parametrize("test", ["one_sided_greater", "one_sided_lesser"])
def test_sequential_one_sided_interval_and_p_value_by_root_finding(test):
    a, b = (
        ArmStats(6000, 300),
        ArmStats(6000, 400) if test == "one_sided_greater" else ArmStats(6000, 215),
    )
    r = stats.compare(
        "proportion", a, b, settings(engine="sequential", test=test, difference_type="absolute")
    )
    pa, pb, va, vb = proportion_moments(a, b)
    est, var, n = pb - pa, va / a.n + vb / b.n, a.n + b.n
    rho = rho_of(2 * 0.05, 5000)  # one-sided sequences use 2 alpha in rho

    def half(alpha):
        return math.sqrt(
            var
            * n
            * 2
            * (n * rho**2 + 1)
            / (n * rho) ** 2
            * math.log(1 + math.sqrt(n * rho**2 + 1) / (2 * alpha))
        )

    if test == "one_sided_greater":
        assert r.ci == (pytest.approx(est - half(0.05), rel=1e-9), math.inf)
    else:
        assert r.ci == (-math.inf, pytest.approx(est + half(0.05), rel=1e-9))
    # p-value: the alpha at which the bound reaches 0 (gbstats bisects for it, rho held fixed)
    p_ref = brentq(lambda al: half(al) - abs(est), 1e-12, 0.4999, xtol=1e-14)
    assert r.p_value == pytest.approx(p_ref, rel=1e-6)
    assert r.p_value < 0.05 and (r.ci[0] > 0 or r.ci[1] < 0)


def test_sequential_one_sided_effect_in_the_other_direction_reports_the_range_end():
    r = stats.compare(
        "proportion", ArmStats(6000, 360), ArmStats(6000, 300), settings(test="one_sided_greater")
    )
    assert r.p_value == 0.4999


def test_sequential_one_sided_with_alpha_half_or_more_is_neutral():
    r = stats.compare("proportion", CONV_A, CONV_B, settings(test="one_sided_greater", alpha=0.6))
    assert r.error == stats.ALPHA_TOO_BIG_FOR_SEQUENTIAL_ONE_SIDED
    assert (r.expected, r.ci, r.p_value) == (0.0, (0.0, 0.0), 1.0)


# --- bayesian ---------------------------------------------------------------------------


def expected_positive_part(mu, sd):
    return integrate.quad(lambda x: x * sps.norm.pdf(x, mu, sd), 0, mu + 40 * sd, epsabs=1e-14)[0]


def test_bayesian_flat_prior_relative():
    r = stats.compare("proportion", CONV_A, CONV_B, settings(engine="bayesian"))
    pa, pb, va, vb = proportion_moments(CONV_A, CONV_B)
    mu = (pb - pa) / pa
    sd = math.sqrt(relative_variance_numeric(pa, va, CONV_A.n, pb, vb, CONV_B.n))
    assert r.expected == pytest.approx(mu, rel=1e-12)
    assert r.uplift_stddev == pytest.approx(sd, rel=1e-6)
    assert r.chance_to_win == pytest.approx(1 - sps.norm.cdf(0, mu, sd), rel=1e-5)
    assert r.ci == pytest.approx(sps.norm.interval(0.95, mu, sd), rel=1e-5)
    assert r.risk[0] == pytest.approx(expected_positive_part(mu, sd), rel=1e-5)
    assert r.risk[1] == pytest.approx(expected_positive_part(-mu, sd), rel=1e-4)
    assert r.p_value is None
    d = r.to_dict()
    assert set(d) == {"expected", "ci", "uplift_stddev", "chance_to_win", "risk"}


def test_bayesian_proper_prior_relative_and_absolute():
    prior = NormalPrior(mean=0.0, variance=0.3**2)
    pa, pb, va, vb = proportion_moments(CONV_A, CONV_B)
    mu_d = (pb - pa) / pa
    v_d = relative_variance_numeric(pa, va, CONV_A.n, pb, vb, CONV_B.n)
    post_v = 1 / (1 / v_d + 1 / prior.variance)
    post_m = post_v * (mu_d / v_d + prior.mean / prior.variance)
    r = stats.compare("proportion", CONV_A, CONV_B, settings(engine="bayesian", prior=prior))
    assert r.expected == pytest.approx(post_m, rel=1e-5)
    assert r.uplift_stddev == pytest.approx(math.sqrt(post_v), rel=1e-5)
    assert abs(r.expected) < abs(mu_d)  # shrunk towards the prior mean 0
    assert r.chance_to_win == pytest.approx(sps.norm.sf(0, post_m, math.sqrt(post_v)), rel=1e-5)

    # a prior stated on the relative scale is rescaled by the control mean for absolute effects
    prior2 = NormalPrior(mean=0.05, variance=0.02**2)
    r_abs = stats.compare(
        "proportion",
        CONV_A,
        CONV_B,
        settings(engine="bayesian", prior=prior2, difference_type="absolute"),
    )
    v_abs = va / CONV_A.n + vb / CONV_B.n
    pm, pv = 0.05 * pa, 0.02**2 * pa**2
    post_v = 1 / (1 / v_abs + 1 / pv)
    post_m = post_v * ((pb - pa) / v_abs + pm / pv)
    assert r_abs.expected == pytest.approx(post_m, rel=1e-9)
    assert r_abs.ci == pytest.approx(sps.norm.interval(0.95, post_m, math.sqrt(post_v)), rel=1e-9)


def test_bayesian_inverse_flips_chance_and_risk():
    plain = stats.compare("proportion", CONV_A, CONV_B, settings(engine="bayesian"))
    inv = stats.compare("proportion", CONV_A, CONV_B, settings(engine="bayesian", inverse=True))
    assert inv.chance_to_win == pytest.approx(1 - plain.chance_to_win)
    assert inv.risk == (plain.risk[1], plain.risk[0])
    assert inv.expected == plain.expected


# --- degenerate input -------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["frequentist", "sequential", "bayesian"])
@pytest.mark.parametrize(
    ("metric", "a", "b", "difference", "code"),
    [
        ("proportion", ArmStats(0, 0), ArmStats(100, 5), "relative", stats.NO_UNITS_IN_VARIATION),
        (
            "proportion",
            ArmStats(100, 0),
            ArmStats(100, 5),
            "relative",
            stats.ZERO_NEGATIVE_BASELINE_VARIATION,
        ),
        (
            "proportion",
            ArmStats(100, 0),
            ArmStats(100, 5),
            "absolute",
            stats.ZERO_NEGATIVE_VARIANCE,
        ),
        (
            "mean",
            ArmStats(10, 50.0, 250.0),
            ArmStats(10, 60.0, 400.0),
            "absolute",
            stats.ZERO_NEGATIVE_VARIANCE,
        ),
        (
            "mean",
            ArmStats(1, 5.0, 25.0),
            ArmStats(10, 60.0, 400.0),
            "absolute",
            stats.ZERO_NEGATIVE_VARIANCE,
        ),
    ],
)
def test_degenerate_input_gives_a_neutral_result_with_a_code(
    engine, metric, a, b, difference, code
):
    r = stats.compare(metric, a, b, settings(engine=engine, difference_type=difference))
    assert r.error == code
    assert (r.expected, r.ci, r.uplift_stddev) == (0.0, (0.0, 0.0), 0.0)
    if engine == "bayesian":
        assert (r.chance_to_win, r.risk) == (0.5, (0.0, 0.0))
    else:
        assert r.p_value == 1.0
    assert r.to_dict()["error"] == code


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: stats.compare("proportion", ArmStats(-1, 0), CONV_B), "control.n"),
        (lambda: stats.compare("proportion", ArmStats(10, 11), CONV_B), "control.sum"),
        (lambda: stats.compare("proportion", ArmStats(10, float("nan")), CONV_B), "finite"),
        (lambda: stats.compare("mean", ArmStats(10, 1.0), ArmStats(10, 1.0, 1.0)), "sum_squares"),
        (lambda: stats.compare("ratio", CONV_A, CONV_B), "metric"),
        (lambda: stats.compare("proportion", CONV_A, CONV_B, settings(alpha=1.5)), "alpha"),
        (
            lambda: stats.compare("proportion", CONV_A, CONV_B, settings(prior=NormalPrior(0, 0))),
            "prior",
        ),
        (lambda: stats.srm_p_value([1, 2], [1]), "same length"),
        (lambda: stats.adjust_p_values([0.1, 1.2], "holm"), "between 0 and 1"),
    ],
)
def test_bad_arguments_raise_stats_input_error(call, message):
    with pytest.raises(stats.StatsInputError, match=message):
        call()


# --- SRM --------------------------------------------------------------------------------


def test_srm_matches_chi_square_and_drops_empty_or_zero_weight_variations():
    users, weights = [5000, 5210, 4870], [1, 1, 1]
    total = sum(users)
    x2 = sum((o - total / 3) ** 2 / (total / 3) for o in users)
    assert stats.srm_p_value(users, weights) == pytest.approx(sps.chi2.sf(x2, 2), rel=1e-9)

    # a variation with weight 0 (switched off) and one with no units are dropped: the test is
    # then on the remaining two with weights renormalised, 1 degree of freedom
    users, weights = [6000, 4000, 37, 0], [0.6, 0.4, 0.0, 0.2]
    e = [10000 * 0.6, 10000 * 0.4]
    x2 = (6000 - e[0]) ** 2 / e[0] + (4000 - e[1]) ** 2 / e[1]
    assert x2 == 0
    assert stats.srm_p_value(users, weights) == pytest.approx(1.0)
    users = [6200, 3800, 37, 0]
    x2 = (6200 - 6000) ** 2 / 6000 + (3800 - 4000) ** 2 / 4000
    assert stats.srm_p_value(users, weights) == pytest.approx(sps.chi2.sf(x2, 1), rel=1e-9)
    assert (
        stats.srm_p_value(users, weights)
        < stats.SRM_THRESHOLD
        < stats.srm_p_value([6000, 4010, 37, 0], weights)
    )


def test_srm_with_fewer_than_two_live_variations_is_one():
    assert stats.srm_p_value([0, 0], [1, 1]) == 1.0
    assert stats.srm_p_value([500, 0], [1, 1]) == 1.0


# --- multiple comparisons ---------------------------------------------------------------

TIED = [0.01, 0.02, 0.02, 0.04, 0.5]


def holm_by_definition(ps):
    """Holm adjusted p_i = max over p_j <= p_i (ties share the larger multiplier's product)."""
    m = len(ps)
    srt = sorted(ps)
    out = []
    for p in ps:
        out.append(min(1.0, max((m - k) * srt[k] for k in range(m) if srt[k] <= p)))
    return out


def bh_by_definition(ps):
    """BH adjusted p_i = min over p_(k) >= p_i of m p_(k) / k, k the rank in sorted order."""
    m = len(ps)
    srt = sorted(ps)
    return [min(min(1.0, m * srt[k] / (k + 1)) for k in range(m) if srt[k] >= p) for p in ps]


def test_holm_with_ties_by_hand_and_by_definition():
    expected = [0.05, 0.08, 0.08, 0.08, 0.5]
    assert stats.adjust_p_values(TIED, "holm") == pytest.approx(expected)
    shuffled = [0.5, 0.02, 0.04, 0.01, 0.02]
    assert stats.adjust_p_values(shuffled, "holm") == pytest.approx(holm_by_definition(shuffled))
    assert stats.adjust_p_values(shuffled, "holm") == pytest.approx([0.5, 0.08, 0.08, 0.05, 0.08])


def test_bh_with_ties_by_hand_and_by_definition():
    expected = [1 / 30, 1 / 30, 1 / 30, 0.05, 0.5]
    assert stats.adjust_p_values(TIED, "bh") == pytest.approx(expected)
    shuffled = [0.5, 0.02, 0.04, 0.01, 0.02, 0.02]
    assert stats.adjust_p_values(shuffled, "bh") == pytest.approx(bh_by_definition(shuffled))
    assert stats.adjust_p_values([], "bh") == []


# --- sample size ------------------------------------------------------------------------


def z_test_power(n, p1, p2, alpha, two_sided=True):
    se = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
    z = sps.norm.ppf(1 - alpha / 2 if two_sided else 1 - alpha)
    return sps.norm.cdf(abs(p2 - p1) / se - z)


@pytest.mark.parametrize(
    ("arms", "test"), [(2, "two_sided"), (4, "two_sided"), (2, "one_sided_greater")]
)
def test_sample_size_is_the_smallest_n_reaching_the_power(arms, test):
    res = stats.sample_size(0.05, 0.1, alpha=0.05, power=0.8, arms=arms, test=test)
    a = 0.05 / (arms - 1)
    two = test == "two_sided"
    assert res.alpha_per_comparison == pytest.approx(a)
    assert z_test_power(res.units_per_arm, 0.05, 0.055, a, two) >= 0.8
    assert z_test_power(res.units_per_arm - 1, 0.05, 0.055, a, two) < 0.8
    assert res.total_units == res.units_per_arm * arms


def test_sample_size_mean_metric_and_sequential_needs_more():
    res = stats.sample_size(
        20.0, 2.0, metric="mean", baseline_stddev=30.0, mde_type="absolute", power=0.9
    )
    n_ref = math.ceil((sps.norm.ppf(0.975) + sps.norm.ppf(0.9)) ** 2 * 2 * 30.0**2 / 2.0**2)
    assert res.units_per_arm == n_ref
    fixed = stats.sample_size(0.05, 0.1)
    seq = stats.sample_size(0.05, 0.1, engine="sequential")
    assert seq.units_per_arm > fixed.units_per_arm
    # at the sequential n the final look's bound is crossed with 80% power
    n = seq.units_per_arm
    var = (0.05 * 0.95 + 0.055 * 0.945) / n
    rho = rho_of(0.05, 5000)
    half = math.sqrt(
        var
        * 2
        * n
        * 2
        * (2 * n * rho**2 + 1)
        / (2 * n * rho) ** 2
        * math.log(math.sqrt(2 * n * rho**2 + 1) / 0.05)
    )
    assert sps.norm.cdf((0.005 - half) / math.sqrt(var)) >= 0.8


def test_sample_size_refuses_bad_arguments():
    with pytest.raises(stats.StatsInputError):
        stats.sample_size(1.5, 0.1)
    with pytest.raises(stats.StatsInputError):
        stats.sample_size(0.05, 0.0)
    with pytest.raises(stats.StatsInputError):
        stats.sample_size(0.05, 0.1, arms=1)


# --- assignment -------------------------------------------------------------------------


def test_assignment_is_deterministic_and_keyed_by_org_experiment_and_customer():
    first = stats.assign("org-1", "exp-1", "cust-42", [1, 1])
    assert all(stats.assign("org-1", "exp-1", "cust-42", [1, 1]) == first for _ in range(5))
    # the same customer lands independently in another experiment or org
    others = {
        stats.assign(org, exp, "cust-42", [1, 1]).variant
        for org in ("org-1", "org-2", "org-3")
        for exp in ("exp-1", "exp-2", "exp-3", "exp-4")
    }
    assert others == {0, 1}


def test_assignment_is_balanced_srm_passes_on_100000_customers():
    for weights in ([1, 1], [0.2, 0.3, 0.5]):
        counts = [0] * len(weights)
        for i in range(100_000):
            counts[stats.assign("org-1", "exp-7", f"customer-{i}", weights).variant] += 1
        assert stats.srm_p_value(counts, weights) > stats.SRM_THRESHOLD
        total = sum(weights)
        for c, w in zip(counts, weights, strict=True):
            assert c / 100_000 == pytest.approx(w / total, abs=0.01)


def test_holdout_share_and_its_independence_from_the_variant_split():
    n, held, moved = 50_000, 0, 0
    for i in range(n):
        with_holdout = stats.assign("o", "campaign-9", f"c{i}", [1, 1], holdout_share=0.1)
        without = stats.assign("o", "campaign-9", f"c{i}", [1, 1])
        if with_holdout.held_out:
            held += 1
            assert with_holdout.variant is None
        elif with_holdout.variant != without.variant:
            moved += 1
    assert sps.binomtest(held, n, 0.1).pvalue > 0.001
    assert moved == 0  # adding a holdout does not reshuffle who sees which variant


def test_assignment_never_picks_a_zero_weight_variant():
    picks = {stats.assign("o", "e", f"c{i}", [1, 0, 1]).variant for i in range(2000)}
    assert picks == {0, 2}


# --- Thompson sampling ------------------------------------------------------------------


def prob_b_beats_a(sa, na, sb, nb):
    fa = sps.beta(1 + sa, 1 + na - sa)
    fb = sps.beta(1 + sb, 1 + nb - sb)
    return integrate.quad(
        lambda x: fb.pdf(x) * fa.cdf(x), 0, 1, points=[sa / na, sb / nb], limit=200
    )[0]


def test_thompson_probability_best_matches_the_beta_integral():
    alloc = stats.thompson_allocation([40, 52], [1000, 1000], min_share=0.0, draws=40_000)
    ref = prob_b_beats_a(40, 1000, 52, 1000)
    assert alloc.probability_best[1] == pytest.approx(ref, abs=0.01)
    assert sum(alloc.weights) == pytest.approx(1.0)


def test_thompson_floor_and_purity():
    a = stats.thompson_allocation([10, 80, 12], [1000, 1000, 1000], min_share=0.1, seed=3)
    b = stats.thompson_allocation([10, 80, 12], [1000, 1000, 1000], min_share=0.1, seed=3)
    assert a == b
    assert min(a.weights) >= 0.1 - 1e-12
    assert a.weights[1] == pytest.approx(0.1 + 0.7 * a.probability_best[1])
    assert sum(a.weights) == pytest.approx(1.0)
    with pytest.raises(stats.StatsInputError):
        stats.thompson_allocation([1, 2], [10, 10], min_share=0.6)


# --- decision ---------------------------------------------------------------------------


def vr(name, a, b, engine="sequential", guardrails=()):
    r = stats.compare("proportion", a, b, settings(engine=engine))
    return stats.VariantResult(name, r, guardrails_breached=tuple(guardrails))


def test_decision_rules():
    big_win = ArmStats(20_000, 1300)
    flat = ArmStats(20_000, 1002)
    base = ArmStats(20_000, 1000)
    assert stats.decide("control", [vr("B", base, big_win)], srm_p=1e-5).label() == "check_setup"
    d = stats.decide("control", [vr("B", base, big_win), vr("C", base, flat)], srm_p=0.4)
    assert d.label() == "ship B"
    d = stats.decide(
        "control", [vr("B", base, big_win, guardrails=["unsubscribe rate"])], srm_p=0.4
    )
    assert d.label() == "keep_running" and "unsubscribe rate" in d.reason
    d = stats.decide("control", [vr("B", big_win, base)], srm_p=0.4)
    assert d.label() == "ship control"
    assert stats.decide("control", [vr("C", base, flat)], srm_p=0.4).label() == "keep_running"
    d = stats.decide("control", [vr("C", base, flat)], srm_p=0.4, practical_effect=0.2)
    assert d.label() == "stop_no_difference"
    d = stats.decide("control", [vr("B", base, big_win, engine="bayesian")], srm_p=0.4)
    assert d.label() == "ship B"


def test_guardrail_breach_on_an_inverse_metric():
    unsub_a, unsub_b = ArmStats(20_000, 40), ArmStats(20_000, 95)
    worse = stats.compare(
        "proportion", unsub_a, unsub_b, settings(engine="frequentist", inverse=True)
    )
    assert stats.guardrail_breached(worse)
    same = stats.compare("proportion", unsub_a, ArmStats(20_000, 42), settings(inverse=True))
    assert not stats.guardrail_breached(same)
    bayes = stats.compare("proportion", unsub_a, unsub_b, settings(engine="bayesian", inverse=True))
    assert stats.guardrail_breached(bayes)


def test_decision_waits_for_the_minimum_units_per_arm():
    base, big_win = ArmStats(1500, 75), ArmStats(1500, 160)
    early = stats.VariantResult(
        "B",
        stats.compare("proportion", base, big_win, settings()),
        units=1500,
    )
    assert early.result.p_value < 0.05
    assert stats.decide("control", [early], srm_p=0.5).label() == "keep_running"
    assert stats.decide("control", [early], srm_p=0.5, min_units_per_arm=1000).label() == "ship B"


# --- a whole result view ----------------------------------------------------------------


def revenue_arm(n, buyers, basket):
    values = np.zeros(n)
    values[:buyers] = basket
    return arm_of(values)


def view(unsub_b=30, units=(5000, 5000, 5000)):
    b_rng = np.random.default_rng(5)
    basket = b_rng.lognormal(4, 0.5, 400)
    variations = [
        stats.Variation(
            "control",
            1,
            units[0],
            {
                "recovery": ArmStats(5000, 250),
                "revenue": revenue_arm(5000, 250, basket[:250]),
                "unsubscribe": ArmStats(5000, 30),
            },
        ),
        stats.Variation(
            "B",
            1,
            units[1],
            {
                "recovery": ArmStats(5000, 380),
                "revenue": revenue_arm(5000, 380, basket[:380]),
                "unsubscribe": ArmStats(5000, unsub_b),
            },
        ),
        stats.Variation(
            "C",
            1,
            units[2],
            {
                "recovery": ArmStats(5000, 262),
                "revenue": revenue_arm(5000, 262, basket[:262]),
                "unsubscribe": ArmStats(5000, 31),
            },
        ),
    ]
    metrics = [
        stats.MetricSpec("recovery", "proportion"),
        stats.MetricSpec("revenue", "mean"),
        stats.MetricSpec("unsubscribe", "proportion", role="guardrail"),
    ]
    return variations, metrics


def test_result_view_corrections_guardrails_and_decision():
    variations, metrics = view()
    res = stats.analyze_experiment(variations, metrics)
    assert len(res.comparisons) == 6
    goal_ps = [c.result.p_value for c in res.comparisons if c.role == "goal"]
    adjusted = [c.adjusted_p_value for c in res.comparisons if c.role == "goal"]
    assert adjusted == pytest.approx(holm_by_definition(goal_ps))
    assert all(c.adjusted_p_value is None for c in res.comparisons if c.role == "guardrail")
    # the engine's own result for one cell, recomputed independently of the view
    direct = stats.compare("proportion", ArmStats(5000, 250), ArmStats(5000, 380))
    assert res.comparisons[0].result == direct
    assert res.decision.label() == "ship B"
    out = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert out["decision"] == "ship B" and out["srm"]["mismatch"] is False

    breached = stats.analyze_experiment(*view(unsub_b=90))
    assert breached.decision.label() == "keep_running"
    assert "unsubscribe" in breached.decision.reason
    b_unsub = [c for c in breached.comparisons if c.variation == "B" and c.metric == "unsubscribe"]
    assert b_unsub[0].to_dict()["breached"] is True

    srm = stats.analyze_experiment(*view(units=(5000, 5400, 5000)))
    assert srm.decision.label() == "check_setup"


# --- any finite input: a result or a refusal, never a crash -----------------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def arm_pairs(draw):
    metric = draw(st.sampled_from(["proportion", "mean"]))

    def arm():
        n = draw(st.integers(0, 10**12))
        if metric == "proportion":
            return ArmStats(n, draw(st.integers(0, n)))
        return ArmStats(n, draw(FINITE), draw(st.floats(0, 1e308)))

    return metric, arm(), arm()


@settings_hyp(max_examples=300, deadline=None)
@given(
    arm_pairs(),
    st.sampled_from(stats.ENGINES),
    st.sampled_from(stats.TESTS),
    st.sampled_from(stats.DIFFERENCE_TYPES),
    st.booleans(),
)
def test_compare_never_raises_on_valid_input(pair, engine, test, difference, with_prior):
    metric, a, b = pair
    if engine == "bayesian":
        test = "two_sided"
    s = settings(
        engine=engine,
        test=test,
        difference_type=difference,
        prior=NormalPrior(0, 0.1) if with_prior else None,
    )
    r = stats.compare(metric, a, b, s)
    json.dumps(r.to_dict(), allow_nan=False)


@settings_hyp(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1e308), min_size=1, max_size=5),
    st.lists(st.floats(0, 1e308), min_size=1, max_size=5),
    FINITE,
    FINITE,
)
def test_srm_and_sample_size_answer_or_refuse(users, weights, baseline, mde):
    for call in (
        lambda: stats.srm_p_value(users, weights),
        lambda: stats.sample_size(baseline, mde),
        lambda: stats.sample_size(baseline, mde, metric="mean", baseline_stddev=abs(mde) + 1),
        lambda: stats.sample_size(baseline, mde, engine="sequential", mde_type="absolute"),
    ):
        try:
            out = call()
        except stats.StatsInputError:
            continue
        value = out if isinstance(out, float) else out.units_per_arm
        assert math.isfinite(value)


def test_result_view_with_bh_and_with_the_bayesian_engine():
    variations, metrics = view()
    res = stats.analyze_experiment(variations, metrics, correction="bh")
    goal_ps = [c.result.p_value for c in res.comparisons if c.role == "goal"]
    adjusted = [c.adjusted_p_value for c in res.comparisons if c.role == "goal"]
    assert adjusted == pytest.approx(bh_by_definition(goal_ps))
    assert res.to_dict()["correction"] == "bh"

    bayes = stats.analyze_experiment(variations, metrics, settings(engine="bayesian"))
    assert all(c.adjusted_p_value is None for c in bayes.comparisons)
    assert bayes.decision.label() == "ship B"
    json.dumps(bayes.to_dict(), allow_nan=False)

    with pytest.raises(stats.StatsInputError, match="no statistics for"):
        stats.analyze_experiment(variations, [*metrics, stats.MetricSpec("clicks", "proportion")])


def test_sample_size_refuses_numbers_whose_effect_overflows():
    # A mean metric's relative effect on a huge baseline is infinite: no n answers it.
    with pytest.raises(stats.StatsInputError, match="too extreme"):
        stats.sample_size(1e308, 1e308, metric="mean", baseline_stddev=1e308)
    with pytest.raises(stats.StatsInputError, match="too extreme"):
        stats.sample_size(1e200, 1e200, metric="mean", baseline_stddev=1.0)
