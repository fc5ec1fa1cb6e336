"""`cartrecovery stats ...`: JSON round-trips, refusals, and the examples in
docs/statistics.md run as written."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from scipy import stats as sps

from cartrecovery import stats as engine
from cli.stats import stats as stats_group

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(command: str, payload) -> tuple[int, str, str]:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    result = CliRunner().invoke(stats_group, [command], input=body)
    return result.exit_code, result.stdout, result.stderr


CONTROL = {"n": 10_000, "sum": 500}
TREATMENT = {"n": 9_800, "sum": 560}
REVENUE_A = {"n": 4000, "sum": 96_000.0, "sum_squares": 6_100_000.0}
REVENUE_B = {"n": 3900, "sum": 99_000.0, "sum_squares": 6_300_000.0}


@pytest.mark.parametrize("engine_name", ["frequentist", "sequential", "bayesian"])
@pytest.mark.parametrize("difference_type", ["relative", "absolute"])
@pytest.mark.parametrize("metric", ["proportion", "mean"])
def test_compare_round_trips_every_engine(engine_name, difference_type, metric):
    a, b = (CONTROL, TREATMENT) if metric == "proportion" else (REVENUE_A, REVENUE_B)
    tests = ["two_sided"] if engine_name == "bayesian" else list(engine.TESTS)
    for test in tests:
        payload = {
            "metric": metric,
            "control": a,
            "treatment": b,
            "engine": engine_name,
            "test": test,
            "difference_type": difference_type,
            "alpha": 0.1,
            "sequential_tuning_parameter": 8000,
            "prior": {"mean": 0.02, "variance": 0.04} if engine_name == "bayesian" else None,
            "inverse": False,
        }
        code, out, err = run("compare", payload)
        assert code == 0, err
        got = json.loads(out)
        want = engine.compare(
            metric,
            engine.ArmStats(**a),
            engine.ArmStats(**b),
            engine.CompareSettings(
                engine=engine_name,
                test=test,
                difference_type=difference_type,
                alpha=0.1,
                sequential_tuning_parameter=8000,
                prior=engine.NormalPrior(0.02, 0.04) if engine_name == "bayesian" else None,
            ),
        ).to_dict()
        assert got == want
        keys = {"expected", "ci", "uplift_stddev"}
        keys |= {"chance_to_win", "risk"} if engine_name == "bayesian" else {"p_value"}
        assert set(got) == keys
        if test == "one_sided_greater":
            assert got["ci"][1] is None
        if test == "one_sided_lesser":
            assert got["ci"][0] is None


def test_compare_frequentist_absolute_against_a_closed_form():
    code, out, _ = run(
        "compare",
        {
            "metric": "proportion",
            "control": CONTROL,
            "treatment": TREATMENT,
            "engine": "frequentist",
            "difference_type": "absolute",
        },
    )
    got = json.loads(out)
    pa, pb = 0.05, 560 / 9800
    va, vb = pa * (1 - pa) / 10_000, pb * (1 - pb) / 9800
    dof = (va + vb) ** 2 / (va**2 / 9999 + vb**2 / 9799)
    se = math.sqrt(va + vb)
    assert code == 0
    assert got["expected"] == pytest.approx(pb - pa)
    assert got["p_value"] == pytest.approx(2 * sps.t.sf((pb - pa) / se, dof), rel=1e-6)
    assert got["uplift_stddev"] == pytest.approx(se)


def test_compare_defaults_are_sequential_two_sided_relative():
    code, out, _ = run(
        "compare", {"metric": "proportion", "control": CONTROL, "treatment": TREATMENT}
    )
    assert code == 0
    want = engine.compare(
        "proportion", engine.ArmStats(**CONTROL), engine.ArmStats(**TREATMENT)
    ).to_dict()
    assert json.loads(out) == want


def test_degenerate_compare_exits_0_with_an_error_code():
    code, out, _ = run(
        "compare",
        {"metric": "proportion", "control": {"n": 0, "sum": 0}, "treatment": TREATMENT},
    )
    assert code == 0
    assert json.loads(out)["error"] == "NO_UNITS_IN_VARIATION"


def test_overflowing_sums_give_a_neutral_result_not_a_crash():
    code, out, err = run(
        "compare",
        {
            "metric": "mean",
            "control": {"n": 10, "sum": 1e-300, "sum_squares": 1e-300},
            "treatment": {"n": 10, "sum": 1e300, "sum_squares": 1e308},
        },
    )
    assert code == 0, err
    assert json.loads(out)["error"] == "NUMERICAL_ERROR"


def test_srm_adjust_and_sample_size_round_trip():
    code, out, _ = run("srm", {"users": [6200, 3800, 37, 0], "weights": [0.6, 0.4, 0, 0.2]})
    x2 = (6200 - 6000) ** 2 / 6000 + (3800 - 4000) ** 2 / 4000
    assert code == 0
    assert json.loads(out)["p_value"] == pytest.approx(sps.chi2.sf(x2, 1), rel=1e-9)

    for method, expected in (
        ("holm", [0.05, 0.08, 0.08, 0.08, 0.5]),
        ("bh", [1 / 30, 1 / 30, 1 / 30, 0.05, 0.5]),
    ):
        code, out, _ = run("adjust", {"p_values": [0.01, 0.02, 0.02, 0.04, 0.5], "method": method})
        assert code == 0
        assert json.loads(out)["adjusted_p_values"] == pytest.approx(expected)

    code, out, _ = run(
        "sample-size", {"baseline": 0.05, "minimum_detectable_effect": 0.1, "power": 0.8}
    )
    n = json.loads(out)["units_per_arm"]
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)
    assert n == math.ceil(z**2 * (0.05 * 0.95 + 0.055 * 0.945) / 0.005**2)
    code, out, _ = run("sample-size", {"baseline_rate": 0.05, "minimum_detectable_effect": 0.1})
    assert code == 0 and json.loads(out)["units_per_arm"] == n


BAD = [
    ("compare", {"metric": "proportion", "control": CONTROL}, "treatment"),
    (
        "compare",
        {"metric": "proportion", "control": {"n": -3, "sum": 0}, "treatment": TREATMENT},
        "control.n",
    ),
    (
        "compare",
        '{"metric": "mean", "control": {"n": 10, "sum": NaN, "sum_squares": 1}, '
        '"treatment": {"n": 10, "sum": 1, "sum_squares": 1}}',
        "NaN",
    ),
    (
        "compare",
        '{"metric": "mean", "control": {"n": 10, "sum": 1, "sum_squares": Infinity}, '
        '"treatment": {"n": 10, "sum": 1, "sum_squares": 1}}',
        "Infinity",
    ),
    (
        "compare",
        {"metric": "proportion", "control": {"n": 10, "sum": 11}, "treatment": TREATMENT},
        "control.sum",
    ),
    (
        "compare",
        {"metric": "mean", "control": {"n": 10, "sum": 1}, "treatment": REVENUE_B},
        "sum_squares",
    ),
    (
        "compare",
        {"metric": "proportion", "control": CONTROL, "treatment": TREATMENT, "engine": "magic"},
        "engine",
    ),
    (
        "compare",
        {"metric": "proportion", "control": CONTROL, "treatment": TREATMENT, "alpha": 0},
        "alpha",
    ),
    (
        "compare",
        {"metric": "proportion", "control": CONTROL, "treatment": TREATMENT, "colour": "red"},
        "colour",
    ),
    (
        "compare",
        {
            "metric": "proportion",
            "control": CONTROL,
            "treatment": TREATMENT,
            "engine": "bayesian",
            "test": "one_sided_greater",
        },
        "two_sided",
    ),
    (
        "compare",
        {"metric": "proportion", "control": {"n": "100", "sum": 5}, "treatment": TREATMENT},
        "control.n",
    ),
    (
        "compare",
        {"metric": "proportion", "control": {"n": True, "sum": 5}, "treatment": TREATMENT},
        "control.n",
    ),
    ("compare", "not json", "JSON"),
    ("compare", "[1, 2]", "object"),
    ("srm", {"users": [10, 20], "weights": [1]}, "same length"),
    ("srm", {"users": [1e308, 1e308], "weights": [1, 1]}, "too large"),
    ("sample-size", {"baseline": 0.05, "minimum_detectable_effect": 1e-300}, "too extreme"),
    ("srm", {"users": [10, -1], "weights": [1, 1]}, "users.1"),
    ("adjust", {"p_values": [0.1, 1.5], "method": "holm"}, "p_values.1"),
    ("adjust", {"p_values": [0.1], "method": "bonferroni"}, "method"),
    ("sample-size", {"baseline": 0.05}, "minimum_detectable_effect"),
    ("sample-size", {"baseline": 1.2, "minimum_detectable_effect": 0.1}, "between 0 and 1"),
]


@pytest.mark.parametrize(("command", "payload", "mention"), BAD)
def test_bad_input_exits_2_with_one_line_and_no_traceback(command, payload, mention):
    code, out, err = run(command, payload)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert mention in err
    assert "Traceback" not in err


def test_the_installed_command_refuses_bad_input_without_a_traceback():
    proc = subprocess.run(
        [str(BIN / "cartrecovery"), "stats", "compare"],
        input='{"metric": "proportion", "control": {"n": -1, "sum": 0}}',
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


def doc_examples():
    text = (REPO / "docs" / "statistics.md").read_text()
    examples = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        current = None
        for line in block.splitlines():
            if line.startswith("$ "):
                current = [line[2:], []]
                examples.append(current)
            elif current is not None and line.strip():
                current[1].append(line)
    return [(cmd, "\n".join(out)) for cmd, out in examples]


def approx_json(value):
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-9, abs=1e-15)
    if isinstance(value, list):
        return [approx_json(v) for v in value]
    if isinstance(value, dict):
        return {k: approx_json(v) for k, v in value.items()}
    return value


def test_docs_have_cli_examples_for_every_subcommand():
    commands = " ".join(cmd for cmd, _ in doc_examples())
    for sub in ("compare", "srm", "adjust", "sample-size"):
        assert f"cartrecovery stats {sub}" in commands


@pytest.mark.parametrize(("command", "expected"), doc_examples())
def test_docs_examples_run_as_written(command, expected):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=env, timeout=120
    )
    if expected.startswith("error: "):
        assert proc.returncode == 2
        assert proc.stderr.strip() == expected
    else:
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == approx_json(json.loads(expected))
