"""``cartrecovery ml ...``: train the models and evaluate them (docs/models.md).

``ml train`` trains, logs, registers and promotes by the rule, then prints a summary table;
``ml evaluate --json`` reports each champion's policy value against the fixed behaviour on the
simulator's truth and, where logged exploration exists in the warehouse, off-policy.
"""

from __future__ import annotations

import json
import math
import sys

import click

SOURCES = ("warehouse", "simulated")


@click.group()
def ml() -> None:
    """Send-time and content models: training and evaluation."""


def _simulation_options(command):
    for option in (
        click.option(
            "--customers",
            default=2000,
            show_default=True,
            type=click.IntRange(50, 1_000_000),
            help="Simulated customers (simulated source and evaluation).",
        ),
        click.option("--seed", default=0, show_default=True, type=int),
    ):
        command = option(command)
    return command


@ml.command()
@click.option(
    "--model",
    "which",
    type=click.Choice(["send_time", "content", "all"]),
    default="all",
    show_default=True,
)
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default="warehouse",
    show_default=True,
    help="warehouse: the marts (build them first: cartrecovery warehouse build); simulated: "
    "the simulator's ground truth.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON list of summaries on stdout.")
@_simulation_options
def train(which: str, source: str, customers: int, seed: int, as_json: bool) -> None:
    """Train, evaluate on held-out carts, register and promote (champion only if better)."""
    from ml import training

    log = _log(source, customers, seed)
    models = training.MODELS if which == "all" else (which,)
    rows = []
    for model in models:
        try:
            rows.append(training.train(model, log, source=source))
        except ValueError as exc:
            raise click.ClickException(f"{model}: {exc}") from None
    if as_json:
        json.dump([training.summary_dict(r) for r in rows], sys.stdout, default=str)
        sys.stdout.write("\n")
        return
    header = ("model", "version", "metric", "value", "champion before", "its value", "promoted")
    table = [
        (
            r.name,
            r.version,
            r.metric,
            _num(r.value),
            r.champion_version or "-",
            _num(r.champion_value),
            "yes" if r.promoted else "no",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table, strict=True)]
    for line in (header, *table):
        click.echo("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)))


def _num(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def _log(source: str, customers: int, seed: int):
    from ml import training

    if source == "simulated":
        return training.simulated_log(customers, seed=seed)
    from ml.features import load_messages
    from pipelines.commands import _database_url

    with _database_url() as url:
        try:
            return load_messages(url)
        except Exception as exc:
            raise click.ClickException(
                f"cannot read the marts ({exc}); build them with `cartrecovery warehouse build`"
                " or train on --source simulated"
            ) from None


@ml.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.option("--carts", default=3000, show_default=True, type=click.IntRange(10, 1_000_000))
@click.option(
    "--off-policy/--no-off-policy",
    default=True,
    help="Also estimate off-policy on the warehouse's logged exploration (needs DATABASE_URL).",
)
@_simulation_options
def evaluate(as_json: bool, carts: int, off_policy: bool, customers: int, seed: int) -> None:
    """Policy value of each champion against the fixed behaviour."""
    import os

    from ml import evaluation, tracking
    from ml.content import NAME as CONTENT
    from ml.send_time import NAME as SEND_TIME
    from simulator import truth

    pop = truth.population(customers, seed=seed)
    cart_set = truth.carts(pop, carts, seed=seed + 1000)
    mlflow_client = tracking.client()
    report: dict = {"simulated_customers": customers, "simulated_carts": carts}
    models = {}
    for key, name in (("send_time", SEND_TIME), ("content", CONTENT)):
        version = tracking.champion_version(mlflow_client, name)
        entry: dict = {"name": name, "champion_version": version}
        if version is None:
            entry["reason"] = "no_model"
        else:
            models[key] = tracking.load(name, version=version)
            value = (
                evaluation.send_time_value(models[key], pop, cart_set)
                if key == "send_time"
                else evaluation.content_value(models[key], pop, cart_set)
            )
            entry["simulated_truth"] = value
        report[key] = entry
    if off_policy and "send_time" in models and os.environ.get("DATABASE_URL"):
        from ml.features import load_messages

        try:
            logged = load_messages(os.environ["DATABASE_URL"])
            report["send_time"]["off_policy"] = evaluation.off_policy(models["send_time"], logged)
        except Exception as exc:  # no marts yet: say so, keep the simulated numbers
            report["send_time"]["off_policy"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    if as_json:
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    for key in ("send_time", "content"):
        click.echo(f"{key}: {json.dumps(report[key], default=str)}")
