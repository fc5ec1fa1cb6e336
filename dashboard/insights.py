"""Recommendations computed from the marts' rows, each with the number behind it.

Pure functions over the rows ``dashboard.data.step_performance`` and ``recovery_hours`` return
(so they are unit-tested without a database). Recoveries are last-touch credits: whole
numbers, carried as floats. A recommendation needs enough messages behind it
(:data:`MIN_MESSAGES` per arm); below that it is not made, rather than made on noise.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_MESSAGES = 20


@dataclass(frozen=True)
class Insight:
    title: str
    number: str
    detail: str


def _count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _rate(recoveries: int, sent: int) -> float:
    return recoveries / sent if sent else 0.0


def _by_step(rows: list[dict]) -> dict[tuple[str, str, int], dict]:
    steps: dict[tuple[str, str, int], dict] = {}
    for r in rows:
        key = (r["campaign_id"], r["campaign"], r["step_index"])
        s = steps.setdefault(key, {"sent": 0, "recoveries": 0})
        s["sent"] += r["sent"]
        s["recoveries"] += r["recoveries"]
    return steps


def best_step(rows: list[dict]) -> Insight | None:
    """The step with the most recoveries per message sent."""
    steps = {k: v for k, v in _by_step(rows).items() if v["sent"] >= MIN_MESSAGES}
    if not steps:
        return None
    (_, campaign, step), s = max(
        steps.items(), key=lambda kv: (_rate(kv[1]["recoveries"], kv[1]["sent"]), kv[1]["sent"])
    )
    rate = _rate(s["recoveries"], s["sent"])
    return Insight(
        "Best step: recoveries per message",
        f"{rate:.1%}",
        f"{campaign}, step {step}: {_count(s['recoveries'])} recoveries from {s['sent']} messages. "
        "Give it more of the traffic, or copy what it does into the weaker steps.",
    )


def peak_hours(rows: list[dict], top: int = 3) -> Insight | None:
    """The hours of day (UTC) when most recoveries happen."""
    total = sum(r["recoveries"] for r in rows)
    if total == 0:
        return None
    best = sorted(rows, key=lambda r: (-r["recoveries"], r["hour"]))[:top]
    share = sum(r["recoveries"] for r in best) / total
    hours = ", ".join(f"{r['hour']:02d}:00" for r in sorted(best, key=lambda r: r["hour"]))
    return Insight(
        "When recoveries happen",
        f"{share:.0%}",
        f"of {_count(total)} recoveries came in the hours starting {hours} (UTC). "
        "Time reminders to land shortly before them.",
    )


def variant_to_retire(rows: list[dict]) -> Insight | None:
    """In a step with several variants, the one far behind the best (recoveries per message)."""
    found: list[tuple[float, Insight]] = []
    by_step: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        if r["variant"]:
            by_step.setdefault((r["campaign"], r["step_index"]), []).append(r)
    for (campaign, step), variants in by_step.items():
        variants = [v for v in variants if v["sent"] >= MIN_MESSAGES]
        if len(variants) < 2:
            continue
        ranked = sorted(variants, key=lambda v: _rate(v["recoveries"], v["sent"]))
        worst, best = ranked[0], ranked[-1]
        gap = _rate(best["recoveries"], best["sent"]) - _rate(worst["recoveries"], worst["sent"])
        if gap <= 0:
            continue
        found.append(
            (
                gap,
                Insight(
                    "A variant to retire",
                    f"{_rate(worst['recoveries'], worst['sent']):.1%}",
                    f"{campaign}, step {step}: variant {worst['variant']!r} recovers "
                    f"{_count(worst['recoveries'])} of {worst['sent']} messages, against "
                    f"{_rate(best['recoveries'], best['sent']):.1%} for {best['variant']!r}. "
                    "Read the experiment's verdict before retiring it.",
                ),
            )
        )
    return max(found, key=lambda f: f[0])[1] if found else None


def unpaid_discount(rows: list[dict], discount_steps: list[dict]) -> Insight | None:
    """A discount step that recovers no more per message than its campaign's steps without a
    discount: the discount gives margin away for nothing."""
    steps = _by_step(rows)
    offered = {(d["campaign_id"], d["step_index"]) for d in discount_steps}
    for (campaign_id, campaign, step), s in sorted(steps.items(), key=lambda kv: kv[0][1:]):
        if (campaign_id, step) not in offered or s["sent"] < MIN_MESSAGES:
            continue
        plain = [
            v
            for (cid, _, other), v in steps.items()
            if cid == campaign_id and (cid, other) not in offered
        ]
        plain_sent = sum(v["sent"] for v in plain)
        if plain_sent < MIN_MESSAGES:
            continue
        with_discount = _rate(s["recoveries"], s["sent"])
        without = _rate(sum(v["recoveries"] for v in plain), plain_sent)
        if with_discount <= without:
            return Insight(
                "A discount that does not pay",
                f"{with_discount:.1%} vs {without:.1%}",
                f"{campaign}, step {step} offers a discount and recovers {with_discount:.1%} "
                f"of its {s['sent']} messages; the campaign's steps without one recover "
                f"{without:.1%} of {plain_sent}. Try the step without it.",
            )
    return None
