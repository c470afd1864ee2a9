"""Across-seed aggregation: one row per (base model, reflection source, γ, benign share) over the
grid's seeds.

Each seed is one training run; the spread between seeds is the run-to-run noise that a single
seed's bootstrap interval does not show. Pure function of metrics.json: mean, min and max of the
primary judge's compliance rate over the seeds that have one."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


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
                stem = re.sub(r"-s\d+$", "", labs[0])  # the cell's label without its seed
                out.append({"name": stem, "model": model, "source": source, "gamma": gamma,
                            **({"benign": benign} if benign else {}), "mode": mode, "prompt_label": pl,
                            "labels": labs, "per_seed": {str(k): v for k, v in per.items()}, "seeds": len(vals),
                            "mean": sum(vals) / len(vals) if vals else None,
                            "min": min(vals) if vals else None, "max": max(vals) if vals else None})
    return out
