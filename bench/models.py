"""Benchmark of the send-time and content models against the simulator's known truth.

One run measures (docs/models.md explains the models, simulator/truth.py the truth):

- recovery rate with the send-time model's choice vs the step's fixed delay (true
  probabilities of new carts of one store), at 500 and 5,000 recipients per store, with the
  model trained on the pooled history of a platform of several such stores, and at 500 on the
  store's own history alone (goal: at least +10% relative);
- margin with uplift-gated discounts vs always offering the code (goal: at least +10%),
  also on other seeds (``--other-seeds``, content model only) so one seed's luck shows;
- scoring latency per message: the send-time choice among 25 candidate hours plus the content
  decision, as delivery calls them (goal: p99 under 2 ms);
- training time of both models at 1,000,000 message events.

``--write`` rewrites the "Models" section of docs/BENCHMARKS.md. Exit status is 0 when a goal
is missed: it is a measurement, not a test; missed goals are printed as MISSED.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml import evaluation  # noqa: E402
from ml.content import ContentModel  # noqa: E402
from ml.send_time import SendTimeModel  # noqa: E402
from simulator import truth  # noqa: E402

CARTS_PER_CUSTOMER = 6
TEST_CARTS = 4000
GOAL_GAIN = 0.10
GOAL_P99_MS = 2.0
# (recipients per store, stores pooled) of the quality rows.
SIZES = ((500, 1), (500, 10), (5000, 1), (5000, 4))


def _store_carts(pop, seed: int, store: int = 0, n: int = TEST_CARTS):
    """New carts of one store's customers (after the training period)."""
    pool = truth.carts(pop, n * (int(pop.store.max()) + 1) * 2, seed=seed)
    keep = pop.store[pool.customer] == store
    fields = ("customer", "abandoned_at", "cart_value", "item_count", "channel")
    return truth.Carts(*(getattr(pool, f)[keep][:n] for f in fields))


def _simulation(per_store: int, stores: int, seed: int):
    """A platform of ``stores`` stores of ``per_store`` recipients: its population, the
    message log the models train on, and new carts of one store to evaluate them on."""
    pop = truth.population(per_store, seed=seed, n_stores=stores)
    history = truth.carts(pop, per_store * stores * CARTS_PER_CUSTOMER, seed=seed + 1)
    log = truth.simulate_messages(pop, history, seed=seed + 2)
    return pop, log, _store_carts(pop, seed + 3)


def quality(per_store: int, stores: int, seed: int) -> dict:
    pop, log, test = _simulation(per_store, stores, seed)
    send = SendTimeModel.train(log)
    content = ContentModel.train(log)
    return {
        "per_store": per_store,
        "stores": stores,
        "messages": log.height,
        "send_time": evaluation.send_time_value(send, pop, test),
        "content": evaluation.content_value(content, pop, test),
    }


def discount_by_seed(per_store: int, stores: int, seed: int) -> dict:
    """The discount columns of :func:`quality` alone (the content model), for other seeds."""
    pop, log, test = _simulation(per_store, stores, seed)
    return evaluation.content_value(ContentModel.train(log), pop, test)


def latency(seed: int, n: int = 3000) -> dict:
    pop = truth.population(2000, seed=seed)
    log = truth.simulate_messages(pop, truth.carts(pop, 12000, seed=seed + 1), seed=seed + 2)
    send, content = SendTimeModel.train(log), ContentModel.train(log)
    test = truth.carts(pop, n, seed=seed + 3)
    rng = np.random.default_rng(seed)
    times, cpu = [], []
    load = os.getloadavg()[0]
    for i in range(n):
        row = {
            "store_key": "s0",
            "customer_key": f"c{test.customer[i]}",
            "channel": str(test.channel[i]),
            "device": str(pop.device[test.customer[i]]),
            "timezone": str(pop.timezone[test.customer[i]]),
            "variant": "A",
            "cart_value": float(test.cart_value[i]),
            "item_count": int(test.item_count[i]),
            "abandoned_at": int(test.abandoned_at[i]),
            "discount_rate": 0.15,
        }
        started, started_cpu = time.perf_counter(), time.thread_time()
        candidates = truth.window_instants(row["abandoned_at"])
        choice = send.choose(row, candidates, np.ones(len(candidates), bool), *rng.random(2))
        p_code, p_none = content.predict_one(row, int(candidates[choice.index]))
        bool(p_code * (0.4 - 0.15) > p_none * 0.4)  # the decision delivery takes
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
    times, cpu = np.asarray(times[100:]), np.asarray(cpu[100:])  # after warm-up
    return {
        "load": load,
        "messages": len(times),
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "max_ms": float(times.max()),
        "cpu_p50_ms": float(np.percentile(cpu, 50)),
        "cpu_p99_ms": float(np.percentile(cpu, 99)),
    }


def training_time(events: int, seed: int) -> dict:
    customers = events // CARTS_PER_CUSTOMER
    started = time.perf_counter()
    pop = truth.population(customers, seed=seed, n_stores=1)
    log = truth.simulate_messages(
        pop, truth.carts(pop, customers * CARTS_PER_CUSTOMER, seed=seed + 1), seed=seed + 2
    )
    simulated = time.perf_counter() - started
    started = time.perf_counter()
    SendTimeModel.train(log)
    send_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ContentModel.train(log)
    content_seconds = time.perf_counter() - started
    return {
        "events": log.height,
        "simulate_s": simulated,
        "send_time_s": send_seconds,
        "content_s": content_seconds,
    }


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%"


def report(results: dict, args, wall: float) -> tuple[str, list[str]]:
    missed = []
    lines = [
        "## Models",
        "",
        "Written by `bench/models.py` (models in docs/models.md; truth in `simulator/truth.py`).",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {_commit()} with "
        f"`.venv/bin/python bench/models.py --write` (seed {args.seed}; {wall:.0f} s wall).",
        "",
        f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
        f"(shared with other work), Python {platform.python_version()}. Load average before "
        f"{results['load_before']:.2f}.",
        f"- History: {CARTS_PER_CUSTOMER} carts per customer over 12 weeks, sent at the fixed "
        "delay (1 h) with 10% exploration over the next 24 h and the code (15%) offered to a "
        "random half; SMS/push held to 08-21 local. Evaluation: "
        f"{TEST_CARTS:,} new carts of store 0, true probabilities (no sampling noise).",
        "",
        "| recipients per store | stores pooled | messages trained on | recovery fixed | "
        "recovery model | gain (goal +10%) | oracle | margin always-code | margin "
        "uplift-gated | gain (goal +10%) | code offered to | best visible rule | oracle margin "
        "gain |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for q in results["quality"]:
        s, c = q["send_time"], q["content"]
        flags = []
        if s["relative_gain"] < GOAL_GAIN:
            flags.append("send time")
        if c["relative_gain_vs_always"] < GOAL_GAIN:
            flags.append("discount")
        for f in flags:
            missed.append(f"{f} at {q['per_store']:,} per store x {q['stores']} stores")
        lines.append(
            f"| {q['per_store']:,} | {q['stores']} | {q['messages']:,} | "
            f"{s['recovery_fixed']:.4f} | {s['recovery_model']:.4f} | "
            f"{_pct(s['relative_gain'])}{' MISSED' if 'send time' in flags else ''} | "
            f"{s['recovery_oracle']:.4f} | {c['margin_always']:,.0f} | {c['margin_model']:,.0f} "
            f"| {_pct(c['relative_gain_vs_always'])}{' MISSED' if 'discount' in flags else ''} "
            f"| {c['offer_share']:.0%} | {_pct(c['margin_visible_rule'] / c['margin_always'] - 1)} "
            f"| {_pct(c['margin_oracle'] / c['margin_always'] - 1)} |"
        )
    if results["seeds"]:
        sizes = [f"{p:,} x {s}" for p, s in SIZES]
        lines += [
            "",
            "Discount gain against always-code on other seeds (`--other-seeds`; content model "
            "only, same rows; each cell: model / best visible rule):",
            "",
            "| seed | " + " | ".join(sizes) + " |",
            "|---|" + "---|" * len(sizes),
        ]
        for seed, cells in results["seeds"].items():
            lines.append(
                f"| {seed} | "
                + " | ".join(
                    f"{_pct(c['relative_gain_vs_always'])} / "
                    f"{_pct(c['margin_visible_rule'] / c['margin_always'] - 1)}"
                    for c in cells
                )
                + " |"
            )
    lat = results["latency"]
    if lat["p99_ms"] >= GOAL_P99_MS:
        missed.append("scoring latency")
    tr = results["training"]
    lines += [
        "",
        f"- Scoring one message (send-time choice among 25 hours + content decision, "
        f"{lat['messages']:,} messages): p50 {lat['p50_ms']:.3f} ms, p99 "
        f"{lat['p99_ms']:.3f} ms (goal < {GOAL_P99_MS} ms"
        f"{', MISSED' if lat['p99_ms'] >= GOAL_P99_MS else ''}), max {lat['max_ms']:.2f} ms; "
        f"CPU time of the scoring thread p50 {lat['cpu_p50_ms']:.3f} ms, p99 "
        f"{lat['cpu_p99_ms']:.3f} ms (wall minus CPU is time the two shared cores gave to "
        f"other processes; load average {lat['load']:.2f} when it started).",
        f"- Training at {tr['events']:,} message events: send-time model "
        f"{tr['send_time_s']:.1f} s, content model {tr['content_s']:.1f} s (features "
        f"included; simulating the log took {tr['simulate_s']:.1f} s).",
        "- Margin is the expected gross margin minus the code's cost (gross margin 40%), "
        "summed over the evaluated carts. `oracle`: the best allowed hour, and the code "
        "offered exactly where it pays, under the truth (hidden sensitivity known): ceilings.",
        "- Reading the discount rows: most of a code's uplift comes from a customer's hidden "
        "sensitivity; what the models see of it (device, cart value, the customer's own "
        "history with codes) is a weak proxy. `best visible rule`: the best rule on device "
        "and cart value alone (offer to phones, or to all, above a cart value), chosen on the "
        "truth of the evaluated carts: the ceiling of any model that cannot see the hidden "
        "sensitivity. Uplift gating gains mostly by not giving codes to customers who buy "
        "anyway; where that ceiling is near +10%, the estimate from a few thousand messages "
        "(a few hundred recoveries) reaches it on some seeds and not on others. The code "
        "acts through the log of the cart value with a slope by device; the customer's own "
        "history (about 0.7 clicks per customer here) enters as an empirical-Bayes prior on "
        'the code\'s effect (docs/models.md, "Content model", with what was tried).',
        "- Reading the latency: the wall-clock figures include time the two shared cores gave "
        "to other processes (see the load average); the CPU time is the scoring's own.",
    ]
    if missed:
        lines += ["", "Goals missed: " + "; ".join(missed) + "."]
    return "\n".join(lines), missed


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


def write(section: str) -> None:
    bench = REPO / "docs" / "BENCHMARKS.md"
    text = bench.read_text()
    block = f"<!-- models:start -->\n{section}\n<!-- models:end -->"
    if "<!-- models:start -->" in text:
        text = re.sub(
            r"<!-- models:start -->\n.*?\n<!-- models:end -->", lambda _: block, text, flags=re.S
        )
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    bench.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--other-seeds",
        default="1,2,3,4",
        help="comma-separated seeds on which the discount rows are also measured ('' for none)",
    )
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    started = time.perf_counter()
    results = {"load_before": os.getloadavg()[0], "quality": [], "seeds": {}}
    for per_store, stores in SIZES:
        print(f"quality: {per_store} per store x {stores} stores", flush=True)
        results["quality"].append(quality(per_store, stores, args.seed))
    for seed in [int(s) for s in args.other_seeds.split(",") if s.strip()]:
        print(f"discount rows, seed {seed}", flush=True)
        results["seeds"][seed] = [discount_by_seed(p, s, seed) for p, s in SIZES]
    print("latency", flush=True)
    results["latency"] = latency(args.seed)
    print(f"training at {args.events:,} events", flush=True)
    results["training"] = training_time(args.events, args.seed)
    section, missed = report(results, args, time.perf_counter() - started)
    print(section)
    for goal in missed:
        print(f"MISSED: {goal}")
    if args.write:
        write(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
