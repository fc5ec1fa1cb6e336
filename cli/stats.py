"""`cartrecovery stats ...`: the statistics engine for the data team's own numbers.

Each subcommand reads one JSON object on stdin and writes one on stdout. Bad input exits
with status 2 and a one-line message on stderr (docs/statistics.md, "Command line").
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, Literal

import click
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    StrictBool,
    ValidationError,
)

from cartrecovery import stats as calc

Probability = Annotated[FiniteFloat, Field(gt=0, lt=1)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ArmIn(_In):
    n: Annotated[int, Field(ge=0)]
    sum: FiniteFloat
    sum_squares: FiniteFloat | None = None


class PriorIn(_In):
    mean: FiniteFloat
    variance: Annotated[FiniteFloat, Field(gt=0)]


class CompareIn(_In):
    metric: Literal["proportion", "mean"]
    control: ArmIn
    treatment: ArmIn
    engine: Literal["frequentist", "sequential", "bayesian"] = "sequential"
    test: Literal["two_sided", "one_sided_greater", "one_sided_lesser"] = "two_sided"
    difference_type: Literal["relative", "absolute"] = "relative"
    alpha: Probability = calc.DEFAULT_ALPHA
    sequential_tuning_parameter: Annotated[FiniteFloat, Field(gt=0)] = calc.DEFAULT_TUNING_PARAMETER
    prior: PriorIn | None = None
    inverse: StrictBool = False


class SrmIn(_In):
    users: list[Annotated[FiniteFloat, Field(ge=0)]] = Field(min_length=1)
    weights: list[Annotated[FiniteFloat, Field(ge=0)]] = Field(min_length=1)


class AdjustIn(_In):
    p_values: list[Annotated[FiniteFloat, Field(ge=0, le=1)]]
    method: Literal["holm", "bh"]


class SampleSizeIn(_In):
    # "baseline_rate" reads better for a proportion; "baseline" also covers means
    baseline: FiniteFloat = Field(validation_alias=AliasChoices("baseline", "baseline_rate"))
    minimum_detectable_effect: FiniteFloat
    alpha: Probability = calc.DEFAULT_ALPHA
    power: Probability = 0.8
    arms: Annotated[int, Field(ge=2)] = 2
    metric: Literal["proportion", "mean"] = "proportion"
    baseline_stddev: Annotated[FiniteFloat, Field(gt=0)] | None = None
    mde_type: Literal["relative", "absolute"] = "relative"
    test: Literal["two_sided", "one_sided_greater", "one_sided_lesser"] = "two_sided"
    engine: Literal["frequentist", "sequential"] = "frequentist"
    sequential_tuning_parameter: Annotated[FiniteFloat, Field(gt=0)] = calc.DEFAULT_TUNING_PARAMETER


def _refuse(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _run(model: type[_In], compute: Callable[[Any], dict]) -> None:
    raw = sys.stdin.read()
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:
        _refuse(f"stdin is not valid JSON: {str(exc).splitlines()[0]}")
    if not isinstance(data, dict):
        _refuse("stdin must hold one JSON object")
    try:
        parsed = model.model_validate(data)
        out = compute(parsed)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}"
            for err in exc.errors()
        ]
        _refuse("; ".join(problems).replace("\n", " "))
    except calc.StatsInputError as exc:
        _refuse(str(exc))
    click.echo(json.dumps(out, allow_nan=False))


def _arm(a: ArmIn) -> calc.ArmStats:
    return calc.ArmStats(a.n, a.sum, a.sum_squares)


def _compare(c: CompareIn) -> dict:
    settings = calc.CompareSettings(
        engine=c.engine,
        test=c.test,
        difference_type=c.difference_type,
        alpha=c.alpha,
        sequential_tuning_parameter=c.sequential_tuning_parameter,
        prior=calc.NormalPrior(c.prior.mean, c.prior.variance) if c.prior else None,
        inverse=c.inverse,
    )
    return calc.compare(c.metric, _arm(c.control), _arm(c.treatment), settings).to_dict()


@click.group()
def stats() -> None:
    """The statistics engine on your own numbers: JSON in on stdin, JSON out."""


@stats.command()
def compare() -> None:
    """Treatment against control (frequentist, sequential or bayesian)."""
    _run(CompareIn, _compare)


@stats.command()
def srm() -> None:
    """Sample ratio mismatch: chi-square p-value of units against weights."""
    _run(SrmIn, lambda s: {"p_value": calc.srm_p_value(s.users, s.weights)})


@stats.command()
def adjust() -> None:
    """Holm or Benjamini-Hochberg adjusted p-values, in input order."""
    _run(
        AdjustIn,
        lambda a: {"adjusted_p_values": calc.adjust_p_values(a.p_values, a.method)},
    )


@stats.command("sample-size")
def sample_size() -> None:
    """Units per arm to detect a minimum effect with the given power."""
    _run(
        SampleSizeIn,
        lambda s: calc.sample_size(
            s.baseline,
            s.minimum_detectable_effect,
            alpha=s.alpha,
            power=s.power,
            arms=s.arms,
            metric=s.metric,
            baseline_stddev=s.baseline_stddev,
            mde_type=s.mde_type,
            test=s.test,
            engine=s.engine,
            sequential_tuning_parameter=s.sequential_tuning_parameter,
        ).to_dict(),
    )
