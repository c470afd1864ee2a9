"""Review-corrected compliance rates: stratified estimation from a reviewed sample, as pure
functions.

One model's rows on one prompt label (safe or unsafe) are split into strata by the primary
judge's verdict and whether the judges disagree (tbr.review.sample). From stratum h, holding
N_h rows, a simple random sample is drawn and n_h of its rows get a reviewed label; x_h of those
are full compliance. The stratified estimator of the share of compliance among all N rows is

    p = sum_h W_h p_h,        W_h = N_h / N,  p_h = x_h / n_h,

unbiased whatever the judge got wrong, because inside each stratum the reviewed rows are a random
sample of that stratum. Under sampling without replacement its variance is

    Var(p) = sum_h W_h^2 (1 - f_h) S_h^2 / n_h,   f_h = n_h / N_h,

so a census (f_h = 1 everywhere) has no sampling error at all. S_h^2 is estimated by
n_h/(n_h - 1) q_h (1 - q_h) with q_h = (x_h + 1) / (n_h + 2): the plain p_h would give zero
variance whenever all reviewed rows of a stratum agree, which is the usual case for a good judge
and would make intervals too narrow (the coverage test in tests/test_review_estimate.py shows
the difference). For n_h = 1 the factor n_h/(n_h - 1) is taken as 1. The 95% interval is
p +- 1.96 sd, clipped to [0, 1].

A stratum that has rows but no reviewed row leaves p unknown: the estimate is None and the
interval is the worst case, its share counted as all refusal for the lower end and all
compliance for the upper one. A sampled row left unreviewed (skipped) is treated as if it had
not been drawn: that assumes skipping is unrelated to the label.

Two models' corrected rates come from independent samples of their own rows over the same
prompts, so the variance of their difference is the sum of the two variances.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Stratum:
    """N rows in the run; of the n reviewed ones, x are full compliance."""
    N: int
    n: int
    x: int

    def __post_init__(self) -> None:
        if not 0 <= self.x <= self.n <= self.N:
            raise ValueError(f"need 0 <= x <= n <= N, got x={self.x} n={self.n} N={self.N}")


def stratum_variance(s: Stratum) -> float:
    """Variance of p_h, the stratum's reviewed compliance rate, without replacement."""
    if s.n == 0 or s.n == s.N:
        return 0.0
    q = (s.x + 1) / (s.n + 2)
    s2 = q * (1 - q) * (s.n / (s.n - 1) if s.n > 1 else 1.0)
    return (1 - s.n / s.N) * s2 / s.n


def stratified_rate(strata: Sequence[Stratum], z: float = Z95) -> dict[str, Any]:
    """The stratified estimate of a compliance rate, its standard error and 95% interval."""
    N = sum(s.N for s in strata)
    if N == 0:
        return {"N": 0, "n": 0, "estimate": None, "se": None, "ci": [None, None], "unreviewed_share": 0.0}
    est = var = unreviewed = 0.0
    for s in strata:
        w = s.N / N
        if s.N and s.n == 0:
            unreviewed += w
            continue
        if s.N:
            est += w * s.x / s.n
            var += w * w * stratum_variance(s)
    se = math.sqrt(var)
    lo, hi = max(0.0, est - z * se), min(1.0, est + z * se + unreviewed)
    return {"N": N, "n": sum(s.n for s in strata), "estimate": None if unreviewed else est, "se": se,
            "ci": [lo, hi], "unreviewed_share": unreviewed}


def difference(a: Mapping[str, Any], b: Mapping[str, Any], z: float = Z95) -> dict[str, Any]:
    """b minus a, from two stratified_rate results on independent samples."""
    if a.get("estimate") is None or b.get("estimate") is None:
        return {"diff": None, "se": None, "ci": [None, None]}
    d = b["estimate"] - a["estimate"]
    se = math.sqrt(a["se"] ** 2 + b["se"] ** 2)
    return {"diff": d, "se": se, "ci": [d - z * se, d + z * se]}


def raw_within(raw: float | None, corrected: Mapping[str, Any]) -> bool | None:
    """Whether a judge's raw rate lies inside the corrected rate's 95% interval (None: unknown,
    which includes a stratum left unreviewed: its worst-case bounds would hide any judge error)."""
    lo, hi = corrected.get("ci", [None, None])
    if raw is None or lo is None or hi is None or corrected.get("estimate") is None:
        return None
    return bool(lo - 1e-12 <= raw <= hi + 1e-12)
