"""Training runs: a message log in, trained + evaluated + registered models out.

Used by the Dagster assets (pipelines/ml_assets.py) and ``cartrecovery ml train``; each step
is a function so the assets can materialise them one by one.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from . import content, send_time, tracking
from .features import MESSAGE_COLUMNS, rows_of

MODELS = ("send_time", "content")
HELDOUT_SHARE = 0.2
# Fewer logged messages than this and a model is not trained (nothing useful to learn).
MIN_MESSAGES = 200


@dataclass(frozen=True)
class Summary:
    model: str
    name: str
    version: str
    metric: str
    value: float
    champion_version: str | None
    champion_value: float | None
    promoted: bool
    train_rows: int
    heldout_rows: int
    seconds: float


def simulated_log(
    customers: int = 2000, carts_per_customer: int = 6, seed: int = 0
) -> pl.DataFrame:
    """A message log from the simulator's ground truth (``simulator.truth``)."""
    from simulator import truth

    pop = truth.population(customers, seed=seed)
    cart_set = truth.carts(pop, customers * carts_per_customer, seed=seed + 1)
    return truth.simulate_messages(pop, cart_set, seed=seed + 2)


def split(log: pl.DataFrame, share: float = HELDOUT_SHARE) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, held-out) by time: the newest ``share`` of carts are held out."""
    log = log.sort("abandoned_at")
    cut = int(log.height * (1 - share))
    return log[:cut], log[cut:]


def fit(model: str, train: pl.DataFrame):
    if model == "send_time":
        return send_time.SendTimeModel.train(train)
    if model == "content":
        return content.ContentModel.train(train)
    raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")


def module(model: str):
    return {"send_time": send_time, "content": content}[model]


def evaluate(model: str, fitted, heldout: pl.DataFrame) -> dict[str, float]:
    return module(model).heldout_metrics(fitted, heldout)


def register(
    model: str,
    fitted,
    train: pl.DataFrame,
    heldout: pl.DataFrame,
    metrics: dict[str, float],
    *,
    source: str,
    home: Path | None = None,
    seconds: float = 0.0,
) -> Summary:
    """Log, register and promote by the rule (tracking.log_and_register)."""
    mod = module(model)
    mlflow_client = tracking.client(home)
    example = tracking.example_frame(
        {k: v for k, v in rows_of(heldout.head(3)).items() if k in _INPUT_COLUMNS}
    )
    registered = tracking.log_and_register(
        mlflow_client,
        mod.NAME,
        fitted,
        params={
            "model": model,
            "source": source,
            "train_rows": train.height,
            "heldout_rows": heldout.height,
            "heldout_share": HELDOUT_SHARE,
            "customer_prior_strength": round(fitted.space.customer_strength, 3),
            "segment_prior_strength": round(fitted.space.segment_strength, 3),
        },
        metrics=metrics | {"train_seconds": seconds},
        metric=mod.METRIC,
        input_example=example,
        heldout_score=lambda champion: evaluate(model, champion, heldout)[mod.METRIC],
        artifacts={"heldout_metrics.json": json.dumps(metrics, indent=2, sort_keys=True)},
        home=home,
    )
    return Summary(
        model,
        registered.name,
        registered.version,
        mod.METRIC,
        registered.metric,
        registered.champion_version,
        registered.champion_metric,
        registered.promoted,
        train.height,
        heldout.height,
        round(seconds, 3),
    )


# What a model reads from a row (the outcome columns are for training only).
_INPUT_COLUMNS = tuple(
    c for c in MESSAGE_COLUMNS if c not in ("clicked", "recovered", "propensity", "explored")
)


def train(model: str, log: pl.DataFrame, *, source: str, home: Path | None = None) -> Summary:
    """Train, evaluate on the held-out newest carts, log, register and promote ``model``."""
    if log.height < MIN_MESSAGES:
        raise ValueError(
            f"{log.height} logged messages: at least {MIN_MESSAGES} are needed to train"
        )
    train_set, heldout = split(log)
    started = time.perf_counter()
    fitted = fit(model, train_set)
    seconds = time.perf_counter() - started
    metrics = evaluate(model, fitted, heldout)
    return register(
        model, fitted, train_set, heldout, metrics, source=source, home=home, seconds=seconds
    )


def summary_dict(summary: Summary) -> dict:
    return asdict(summary)
