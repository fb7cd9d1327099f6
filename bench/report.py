"""The tables and ratios `make bench` prints and writes to bench/results/latest.json."""

from __future__ import annotations

from statistics import median
from typing import Any


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median rate (the lower middle one for an even count), with every
    round's rate beside it."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    middle = ordered[(len(ordered) - 1) // 2]
    return {**middle, "rounds_rps": [r["rps"] for r in runs]}


LABELS = {
    "http_limit": "HTTP limit (bare endpoint)",
    "kafka_limit": "Kafka limit (raw producer)",
    "naive": "Naive (produce+flush)",
    "steps": "Bridge steps, no Kafka",
    "essentials": "Bridge essentials (steps + Kafka ack)",
    "bridge": "Bridge (end to end)",
    "bridge_half_load": "Bridge @ half max rate",
}


def table(results: dict[str, dict[str, Any]], rounds: dict[str, list[dict[str, Any]]]) -> str:
    """Rate and latencies of the median round; errors, 2xx, records and lost summed over all rounds."""
    head = (
        "| scenario | workers | req/s (median) | req/s per round | p50 ms | p99 ms | p99.9 ms "
        "| errors | 2xx | records | lost |"
    )
    lines = [head, "|" + "---|" * 11]
    for workers, scenarios in results.items():
        for name, r in scenarios.items():
            runs = [one[name] for one in rounds[workers] if name in one] or [r]
            errors = sum(x.get("non_2xx", 0) + x.get("socket_errors", 0) for x in runs)
            rate = f"{r['rps']:,.0f}"
            if "target_rps" in r:
                rate += f" (target {r['target_rps']:,.0f})"
            per_round = " / ".join(f"{x['rps']:,.0f}" for x in runs) if len(runs) > 1 else "-"
            ok = "-" if name == "http_limit" else str(sum(x["ok_2xx"] for x in runs))
            records = str(sum(x["records"] for x in runs)) if "records" in r else "-"
            lost = str(sum(x["lost"] for x in runs)) if "lost" in r else "-"
            lines.append(
                f"| {LABELS[name]} | {workers} | {rate} | {per_round} | {r['p50_ms']:.1f} | "
                f"{r['p99_ms']:.1f} | {r['p999_ms']:.1f} | {errors} | {ok} | {records} | {lost} |"
            )
    return "\n".join(lines)


# (numerator, denominator, name): the two targets first, then the breakdown of the bridge's cost.
RATIOS = (
    ("bridge", "http_limit", "bridge_over_http"),
    ("bridge", "naive", "bridge_over_naive"),
    ("steps", "http_limit", "steps_over_http"),
    ("essentials", "http_limit", "essentials_over_http"),
    ("steps", "naive", "steps_over_naive"),
    ("bridge", "essentials", "bridge_over_essentials"),
)


def ratios(results: dict[str, dict[str, Any]], rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Ratios inside each round (measured minutes apart at most), then their median."""
    out: dict[str, Any] = {}
    for workers, s in results.items():
        if "bridge" not in s:
            continue
        for this, other, key in RATIOS:
            per_round = [
                r[this]["rps"] / r[other]["rps"]
                for r in rounds[workers]
                if this in r and r.get(other, {}).get("rps")
            ]
            if per_round:
                out[f"{key}_{workers}w"] = round(median(per_round), 3)
                out[f"{key}_{workers}w_rounds"] = [round(x, 3) for x in per_round]
        if "bridge_half_load" in s:
            out[f"p99_ms_at_half_max_{workers}w"] = s["bridge_half_load"]["p99_ms"]
        lost = [r.get("lost", 0) for rs in rounds[workers] for r in rs.values()]
        out[f"lost_{workers}w"] = sum(lost) + s.get("bridge_half_load", {}).get("lost", 0)
    for workers in results:
        checks = {
            "bridge_ge_half_http_limit": out.get(f"bridge_over_http_{workers}w", 0) >= 0.5,
            "no_lost_records": out.get(f"lost_{workers}w", 1) == 0,
            "p99_le_25ms_at_half_max": out.get(f"p99_ms_at_half_max_{workers}w", 1e9) <= 25,
            "bridge_ge_3x_naive": out.get(f"bridge_over_naive_{workers}w", 0) >= 3,
        }
        out[f"targets_{workers}w"] = {name: "met" if ok else "NOT met" for name, ok in checks.items()}
    keys = sorted(results)
    if len(keys) >= 2:
        first, last = results[keys[0]], results[keys[-1]]
        for name in LABELS:
            if name in first and name in last and first[name]["rps"]:
                out[f"scaling_{name}_{keys[0]}w_to_{keys[-1]}w"] = round(
                    last[name]["rps"] / first[name]["rps"], 2
                )
    return out
