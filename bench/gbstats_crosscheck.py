"""Compare cartrecovery.stats with GrowthBook's gbstats on a grid of cases.

gbstats is not a dependency of the project; fetch it beside the checkout and point
PYTHONPATH at it (its own imports are numpy, scipy, pydantic and packaging, which the
project's virtualenv has):

    .venv/bin/pip download gbstats==0.8.0 --no-deps -d /tmp/gb
    (cd /tmp/gb && unzip -oq gbstats-0.8.0-py3-none-any.whl)
    PYTHONPATH=/tmp/gb .venv/bin/python bench/gbstats_crosscheck.py

Prints every value that differs by more than 1e-6 (relative) and a summary; exit status
1 on a difference. Known difference, skipped: gbstats 0.8.0 writes the upper end of the
one_sided_lesser interval as Δ − w; we write Δ + w (docs/statistics.md).
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gbstats.bayesian.tests import (  # noqa: E402
    EffectBayesianABTest,
    EffectBayesianConfig,
    GaussianPrior,
)
from gbstats.frequentist.tests import (  # noqa: E402
    FrequentistConfig,
    OneSidedTreatmentGreaterTTest,
    OneSidedTreatmentLesserTTest,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import ProportionStatistic, SampleMeanStatistic  # noqa: E402
from gbstats.utils import check_srm  # noqa: E402

from cartrecovery import stats  # noqa: E402

CASES = [
    ("proportion", (10000, 500, None), (9800, 560, None)),
    ("proportion", (3000, 90, None), (3100, 70, None)),
    ("mean", (4000, 96000.0, 6100000.0), (3900, 99000.0, 6300000.0)),
    ("mean", (500, 1500.0, 40000.0), (520, 1400.0, 36000.0)),
]
TESTS = [
    (TwoSidedTTest, "two_sided"),
    (OneSidedTreatmentGreaterTTest, "one_sided_greater"),
    (OneSidedTreatmentLesserTTest, "one_sided_lesser"),
]


def main() -> int:
    compared, worst, bad = 0, 0.0, 0

    def close(ours: float, theirs: float, what: str) -> None:
        nonlocal compared, worst, bad
        compared += 1
        d = abs(ours - theirs) / max(abs(theirs), 1e-12)
        worst = max(worst, d)
        if d > 1e-6:
            bad += 1
            print(f"DIFFERS {what}: ours {ours!r}, gbstats {theirs!r}")

    def gb_stat(metric, arm):
        n, s, ss = arm
        if metric == "proportion":
            return ProportionStatistic(n=n, sum=s)
        return SampleMeanStatistic(n=n, sum=s, sum_squares=ss)

    for (metric, a, b), dt in itertools.product(CASES, ["relative", "absolute"]):
        ga, gb = gb_stat(metric, a), gb_stat(metric, b)
        label = f"{metric} {a} vs {b} {dt}"

        def ours(_metric=metric, _a=a, _b=b, _dt=dt, **kw):
            settings = stats.CompareSettings(difference_type=_dt, **kw)
            return stats.compare(_metric, stats.ArmStats(*_a), stats.ArmStats(*_b), settings)

        for cls, test in TESTS:
            r = cls(ga, gb, FrequentistConfig(difference_type=dt, alpha=0.05)).compute_result()
            o = ours(engine="frequentist", test=test)
            close(o.expected, r.expected, f"{label} frequentist {test} expected")
            close(o.p_value, r.p_value, f"{label} frequentist {test} p")
            close(o.uplift_stddev, r.uplift.stddev, f"{label} frequentist {test} stddev")
            for end, (x, y) in enumerate(zip(o.ci, r.ci, strict=True)):
                if math.isfinite(x) and test != "one_sided_lesser":
                    close(x, y, f"{label} frequentist {test} ci[{end}]")
        for n_star in (5000, 20000):
            cfg = SequentialConfig(difference_type=dt, sequential_tuning_parameter=n_star)
            r = SequentialTwoSidedTTest(ga, gb, cfg).compute_result()
            o = ours(engine="sequential", sequential_tuning_parameter=n_star)
            close(o.p_value, r.p_value, f"{label} sequential N*={n_star} p")
            close(o.ci[0], r.ci[0], f"{label} sequential N*={n_star} ci[0]")
            close(o.ci[1], r.ci[1], f"{label} sequential N*={n_star} ci[1]")
        for prior, inverse in itertools.product(
            (None, GaussianPrior(mean=0.01, variance=0.05, proper=True)), (False, True)
        ):
            cfg = EffectBayesianConfig(
                difference_type=dt,
                inverse=inverse,
                prior_type="relative",
                prior_effect=prior or GaussianPrior(),
            )
            r = EffectBayesianABTest(ga, gb, cfg).compute_result()
            o = ours(
                engine="bayesian",
                inverse=inverse,
                prior=stats.NormalPrior(prior.mean, prior.variance) if prior else None,
            )
            what = f"{label} bayesian prior={prior is not None} inverse={inverse}"
            close(o.expected, r.expected, f"{what} expected")
            close(o.chance_to_win, r.chance_to_win, f"{what} chance_to_win")
            for i in (0, 1):
                close(o.ci[i], r.ci[i], f"{what} ci[{i}]")
                close(o.risk[i], r.risk[i], f"{what} risk[{i}]")
    for users, weights in (([5000, 5210, 4870], [1, 1, 1]), ([6200, 3800], [0.6, 0.4])):
        close(stats.srm_p_value(users, weights), check_srm(users, weights), f"srm {users}")
    print(f"{compared} values compared, worst relative difference {worst:.1e}, {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
