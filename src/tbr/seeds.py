"""Across-seed aggregation: one row per (base model, reflection source, γ, benign share) over the
grid's seeds, and baseline-vs-TBR differences pooled over seeds.

Each seed is one training run; the spread between seeds is the run-to-run noise that a single
seed's bootstrap interval does not show. Pure function of metrics.json: mean, min and max of the
primary judge's compliance rate over the seeds that have one, and a 95% t-interval over them."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tbr.metrics import pooled_paired_bootstrap


def aggregate_seeds(m: Mapping[str, Any]) -> list[dict[str, Any]]:
    cells = m.get("cells") or {}
    if len({c["seed"] for c in cells.values()}) < 2:
        return []
    pj = m["primary_judge"]
    groups: dict[tuple[str, str, float, float], list[str]] = {}
    for lab, c in sorted(cells.items(), key=lambda kv: (kv[1]["model"], kv[1]["source"], kv[1]["gamma"],
                                                         kv[1].get("benign", 0.0), kv[1]["seed"])):
        groups.setdefault((c["model"], c["source"], c["gamma"], c.get("benign", 0.0)), []).append(lab)
    out = []
    for (model, source, gamma, benign), labs in groups.items():
        for mode in m["modes"]:
            for pl in ("safe", "unsafe"):
                per = {}
                for lab in labs:
                    o = m["models"][lab][mode][pj]["all"].get(pl, {}).get("overall") or {}
                    if o.get("compliance") is not None:
                        per[cells[lab]["seed"]] = o["compliance"]
                vals = list(per.values())
                si = seed_interval(vals)
                stem = re.sub(r"-s\d+$", "", labs[0])  # the cell's label without its seed
                out.append({"name": stem, "model": model, "source": source, "gamma": gamma,
                            **({"benign": benign} if benign else {}), "mode": mode, "prompt_label": pl,
                            "labels": labs, "per_seed": {str(k): v for k, v in per.items()}, "seeds": len(vals),
                            "mean": si["mean"], "min": min(vals) if vals else None,
                            "max": max(vals) if vals else None, "ci": si["ci"]})
    return out


# Student's t 0.975 quantiles for 1..30 degrees of freedom (standard tables); beyond 30 the
# Cornish-Fisher term z + (z^3 + z) / (4 df) is within 0.001 of the exact quantile.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    if df < 1:
        raise ValueError("t quantile needs at least one degree of freedom")
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df)


def seed_interval(vals: Sequence[float]) -> dict[str, Any]:
    """Mean over seeds and its 95% t-interval, mean ± t(0.975, k-1) · sd / √k, with sd the sample
    standard deviation (k - 1 in the denominator). Each seed is one training run, so this is the
    interval for the run-to-run mean: with two seeds t is 12.7 and the interval is honestly wide.
    One seed has no across-seed interval (None)."""
    k = len(vals)
    if k == 0:
        return {"mean": None, "sd": None, "ci": [None, None]}
    mean = sum(vals) / k
    if k == 1:
        return {"mean": mean, "sd": None, "ci": [None, None]}
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (k - 1))
    half = t975(k - 1) * sd / math.sqrt(k)
    return {"mean": mean, "sd": sd, "ci": [mean - half, mean + half]}


def _group(lab: str, cells: Mapping[str, Any]) -> tuple[Any, ...]:
    c = cells.get(lab)
    return ("untouched", lab) if c is None else (c["model"], c["source"], c["gamma"], c.get("benign", 0.0))


def pool_across_seeds(cells: Mapping[str, Any], pairs: Sequence[Mapping[str, Any]],
                      primary: Mapping[tuple[str, str, str], Mapping[str, str]], n_boot: int = 1000,
                      seed: int = 0) -> list[dict[str, Any]]:
    """The grid's per-seed paired comparisons (baseline vs TBR of one seed, untouched vs a
    fine-tune) pooled over seeds: one row per (a's cell, b's cell, mode, prompt label) that has
    at least two seeds, with `pooled_paired_bootstrap`'s estimate and interval."""
    groups: dict[tuple[Any, ...], list[tuple[int, str, str]]] = {}
    for p in pairs:
        a, b = p["a"], p["b"]
        if b not in cells or (a in cells and cells[a]["seed"] != cells[b]["seed"]):
            continue
        key = (_group(a, cells), _group(b, cells), p["mode"], p["prompt_label"])
        groups.setdefault(key, []).append((cells[b]["seed"], a, b))
    out = []
    for (_, _, mode, pl), members in groups.items():
        members.sort()
        if len({s for s, _, _ in members}) < 2:
            continue
        per_seed = [(primary[(a, mode, pl)], primary[(b, mode, pl)]) for _, a, b in members]
        d = pooled_paired_bootstrap(per_seed, n_boot=n_boot, seed=seed)
        out.append({"a": re.sub(r"-s\d+$", "", members[0][1]), "b": re.sub(r"-s\d+$", "", members[0][2]),
                    "mode": mode, "prompt_label": pl, "seed_list": [s for s, _, _ in members],
                    "pairs": [[a, b] for _, a, b in members], **d})
    return out
