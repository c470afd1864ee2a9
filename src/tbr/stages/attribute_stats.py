"""The attribution statistic as pure functions: the focus word's share of the total absolute
attribution to the refusal target, its mean over a suite with a seeded percentile bootstrap
interval, and the paired difference between two models on the same prompts."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, TypeGuard, cast

import numpy as np

METRICS = ("focus_share", "ig_focus_share")


def _finite(v: Any) -> TypeGuard[float]:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def focus_share(word_attr: Sequence[float], focus_index: int) -> float | None:
    """|A_focus| / sum_w |A_w|; None when every word has zero attribution."""
    a = np.abs(np.asarray(word_attr, dtype=np.float64))
    total = math.fsum(a.tolist())
    return None if total == 0 else float(a[focus_index] / total)


def bootstrap_mean_ci(values: Iterable[float | None], *, n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> dict[str, Any]:
    """Mean of the finite values and its percentile-bootstrap interval (pure: same input, same output)."""
    x = np.asarray([v for v in values if _finite(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    mean = math.fsum(x.tolist()) / n
    if n == 1:
        return {"mean": mean, "lo": mean, "hi": mean, "n": 1}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    lo, hi = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return {"mean": mean, "lo": float(lo), "hi": float(hi), "n": n}


def paired_bootstrap_diff(a: Sequence[float | None], b: Sequence[float | None], *, n_boot: int = 2000,
                          level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Mean of b_i - a_i over the items finite in both, with a paired (resample items) bootstrap interval."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    keep = [(x, y) for x, y in zip(a, b) if _finite(x) and _finite(y)]
    ci = bootstrap_mean_ci([y - x for x, y in keep], n_boot=n_boot, level=level, seed=seed)
    ma = math.fsum(x for x, _ in keep) / len(keep) if keep else None
    mb = math.fsum(y for _, y in keep) / len(keep) if keep else None
    return {"mean_a": ma, "mean_b": mb, "diff": ci["mean"], "lo": ci["lo"], "hi": ci["hi"], "n": ci["n"]}


def attribution_stats(rows: Sequence[dict[str, Any]], labels: Sequence[str], *, n_boot: int = 2000,
                      level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Per model: mean focus share (perturbation and IG) with bootstrap CI and IG completeness;
    per pair of models (in the order given, diff = later - earlier): paired differences."""
    ids = list(dict.fromkeys(str(r["id"]) for r in rows))
    by = {lab: {str(r["id"]): r for r in rows if r["model"] == lab} for lab in labels}
    kw: dict[str, Any] = {"n_boot": n_boot, "level": level, "seed": seed}
    models: dict[str, Any] = {}
    for lab in labels:
        rs = [by[lab][i] for i in ids if i in by[lab]]
        rel = cast(list[float], [r.get("ig_completeness_rel_gap") for r in rs
                                 if _finite(r.get("ig_completeness_rel_gap"))])
        gap = cast(list[float], [r.get("ig_completeness_gap") for r in rs if _finite(r.get("ig_completeness_gap"))])
        models[lab] = {m: bootstrap_mean_ci([r.get(m) for r in rs], **kw) for m in METRICS}
        models[lab]["n_prompts"] = len(rs)
        models[lab]["ig_completeness"] = {"mean_gap": float(np.mean(gap)) if gap else None,
                                          "mean_rel_gap": float(np.mean(rel)) if rel else None,
                                          "median_rel_gap": float(np.median(rel)) if rel else None,
                                          "max_rel_gap": float(np.max(rel)) if rel else None}
    paired = []
    for i, la in enumerate(labels):
        for lb in labels[i + 1:]:
            for m in METRICS:
                va = [by[la][k].get(m) if k in by[la] else None for k in ids]
                vb = [by[lb][k].get(m) if k in by[lb] else None for k in ids]
                paired.append({"a": la, "b": lb, "metric": m, **paired_bootstrap_diff(va, vb, **kw)})
    return {"models": models, "paired": paired, "n_prompts": len(ids),
            "bootstrap": {"n_boot": n_boot, "level": level, "seed": seed}}


# ------------------------------------------------------------------------------------ stage
