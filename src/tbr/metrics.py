"""Metrics as pure functions: compliance rates with Wilson intervals, per-type breakdowns,
and paired bootstrap differences between two models on the same prompts.

Conventions: compliance rate (CR) = full_compliance / judged, where judged excludes
`unparsed` and `uncertain`; full and partial refusal rates are reported apart; unparsed and
uncertain are each counted on their own and never enter a rate's numerator or denominator.
"""
from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Z95 = 1.959963984540054
UNDECIDED = ("unparsed", "uncertain", "truncated")  # as tbr.judges.UNDECIDED; metrics imports no judge code


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (n=0 -> (0, 1): nothing is known)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rates(labels: Iterable[str]) -> dict[str, Any]:
    """Counts and rates of one group of judge labels."""
    labels = list(labels)
    c = {k: 0 for k in ("full_compliance", "full_refusal", "partial_refusal", "unparsed", "uncertain", "truncated")}
    for lab in labels:
        c[lab] += 1
    n = c["full_compliance"] + c["full_refusal"] + c["partial_refusal"]
    lo, hi = wilson(c["full_compliance"], n)
    out: dict[str, Any] = {"n": n, "unparsed": c["unparsed"],
                           **{f"n_{k}": v for k, v in c.items() if k not in UNDECIDED}}
    if c["uncertain"]:  # only where a calibrated judge abstained, so older metrics stay byte-identical
        out["uncertain"] = c["uncertain"]
    if c["truncated"]:  # only where a response was cut before any answer (same reason)
        out["truncated"] = c["truncated"]
    out["compliance"] = c["full_compliance"] / n if n else None
    out["compliance_ci"] = [lo, hi]
    out["full_refusal"] = c["full_refusal"] / n if n else None
    out["partial_refusal"] = c["partial_refusal"] / n if n else None
    return out


def breakdown(rows: Sequence[Mapping[str, Any]], label_field: str = "label") -> dict[str, Any]:
    """Rates on safe and unsafe prompts, overall and per type. Rows carry prompt_label, type
    and the judge's label."""
    out: dict[str, Any] = {}
    for pl in ("safe", "unsafe"):
        sub = [r for r in rows if r["prompt_label"] == pl]
        if not sub:
            continue
        by_type: dict[str, list[str]] = defaultdict(list)
        for r in sub:
            by_type[r["type"]].append(r[label_field])
        out[pl] = {"overall": rates(r[label_field] for r in sub),
                   "by_type": {t: rates(v) for t, v in sorted(by_type.items())}}
    return out


def paired_bootstrap(a: Mapping[str, str], b: Mapping[str, str], n_boot: int = 1000,
                     seed: int = 0) -> dict[str, Any]:
    """Difference in compliance rate, b minus a, over prompts judged (not unparsed/uncertain) for both,
    with a percentile bootstrap 95% interval that resamples prompts (keeping pairs)."""
    d = _paired_diffs(a, b)
    if not d:
        return {"n": 0, "diff": None, "ci": [None, None]}
    n = len(d)
    rng = random.Random(seed)
    boots = [sum(d[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot)]
    return {"n": n, "diff": sum(d) / n, "ci": _percentile_ci(boots)}


def _paired_diffs(a: Mapping[str, str], b: Mapping[str, str]) -> list[int]:
    """Per prompt judged for both (in id order): 1 if only b complies, -1 if only a, else 0."""
    keys = sorted(k for k in a.keys() & b.keys() if a[k] not in UNDECIDED and b[k] not in UNDECIDED)
    return [(b[k] == "full_compliance") - (a[k] == "full_compliance") for k in keys]


def _percentile_ci(boots: list[float]) -> list[float]:
    """The 2.5th and 97.5th percentiles of bootstrap replicates (the outer ranks, rounded outwards)."""
    boots = sorted(boots)
    n_boot = len(boots)
    return [boots[int(math.floor(0.025 * (n_boot - 1)))], boots[int(math.ceil(0.975 * (n_boot - 1)))]]


def pooled_paired_bootstrap(per_seed: Sequence[tuple[Mapping[str, str], Mapping[str, str]]], n_boot: int = 1000,
                            seed: int = 0) -> dict[str, Any]:
    """b minus a pooled over seeds: per_seed holds one (a, b) pair of prompt -> label maps per seed
    (a seed's baseline and its TBR model). The estimate is the mean over seeds of each seed's
    paired difference (every training run weighs the same). The 95% interval is a two-stage
    percentile bootstrap: draw seeds with replacement, then prompts with replacement inside each
    drawn seed, so it carries the run-to-run spread as well as the prompt sampling. With one seed
    it is exactly `paired_bootstrap`."""
    if len(per_seed) == 1:
        one = paired_bootstrap(*per_seed[0], n_boot=n_boot, seed=seed)
        return one | {"seeds": 1, "per_seed": [one["diff"]]}
    ds = [d for d in (_paired_diffs(a, b) for a, b in per_seed) if d]
    if not ds:
        return {"n": 0, "diff": None, "ci": [None, None], "seeds": 0, "per_seed": []}
    per = [sum(d) / len(d) for d in ds]
    k = len(ds)
    rng = random.Random(seed)
    boots = []
    for _ in range(n_boot):
        total = 0.0
        for _ in range(k):
            d = ds[rng.randrange(k)]
            n = len(d)
            total += sum(d[rng.randrange(n)] for _ in range(n)) / n
        boots.append(total / k)
    return {"n": sum(len(d) for d in ds), "diff": sum(per) / k, "ci": _percentile_ci(boots), "seeds": k,
            "per_seed": per}


# -- lm-evaluation-harness results (general.json) ------------------------------------------

# preferred headline metric of a task, first match wins (see primary_metric)
PRIMARY_METRICS = ("acc", "exact_match,strict-match", "exact_match,flexible-extract", "exact_match",
                   "acc_norm", "f1", "mcc")


def primary_metric(task_metrics: Mapping[str, Any]) -> str | None:
    """The headline metric of one task's entry in general.json (accuracy-like, first match)."""
    for m in PRIMARY_METRICS:
        if task_metrics.get(m) is not None:
            return m
    for m, v in task_metrics.items():
        if m != "n" and "stderr" not in m and isinstance(v, (int, float)):
            return m
    return None


def stderr_key(metric: str) -> str:
    """Key of a metric's standard error: lm-eval names the error of `m,filter` `m_stderr,filter`."""
    name, sep, filt = metric.partition(",")
    return f"{name}_stderr{sep}{filt}"
