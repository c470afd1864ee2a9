"""The seed axis's maths, exact: the across-seed t-interval and the TBR-minus-baseline
difference pooled over seeds (bootstrap of seeds, then of prompts within each seed)."""
from __future__ import annotations

import math
import random

import pytest

from tbr.metrics import paired_bootstrap, pooled_paired_bootstrap
from tbr.seeds import seed_interval, t975

C, R = "full_compliance", "full_refusal"


def test_seed_interval_by_hand() -> None:
    # 0.2, 0.4, 0.6: mean 0.4, sd 0.2, half-width 4.303 * 0.2 / sqrt(3)
    r = seed_interval([0.2, 0.4, 0.6])
    half = 4.303 * 0.2 / math.sqrt(3)
    assert r["mean"] == pytest.approx(0.4) and r["sd"] == pytest.approx(0.2)
    assert r["ci"] == pytest.approx([0.4 - half, 0.4 + half])
    assert seed_interval([0.3, 0.3])["ci"] == [0.3, 0.3]  # no spread, no width
    assert seed_interval([0.5]) == {"mean": 0.5, "sd": None, "ci": [None, None]}  # one run has no spread
    assert seed_interval([])["mean"] is None


def test_t_quantiles() -> None:
    assert t975(1) == 12.706 and t975(2) == 4.303 and t975(30) == 2.042
    assert t975(60) == pytest.approx(2.000, abs=0.001) and t975(120) == pytest.approx(1.980, abs=0.001)
    with pytest.raises(ValueError):
        t975(0)


def test_one_seed_is_the_plain_paired_bootstrap() -> None:
    rng = random.Random(3)
    a = {str(i): rng.choice([C, R]) for i in range(40)}
    b = {str(i): rng.choice([C, R, "unparsed"]) for i in range(40)}
    one = paired_bootstrap(a, b, 200, seed=7)
    assert pooled_paired_bootstrap([(a, b)], 200, seed=7) == one | {"seeds": 1, "per_seed": [one["diff"]]}


def test_pooled_estimate_is_the_mean_over_seeds() -> None:
    # seed 0: diffs +1, 0 over two prompts (0.5); seed 1: three prompts, +1, -1, 0 (0.0) -> 0.25,
    # not the prompt-pooled 1/5; undecided prompts drop out of their seed
    s0 = ({"p": R, "q": C}, {"p": C, "q": C})
    s1 = ({"p": R, "q": C, "r": R, "u": "uncertain"}, {"p": C, "q": R, "r": R, "u": C})
    d = pooled_paired_bootstrap([s0, s1], 500, seed=0)
    assert d["diff"] == 0.25 and d["per_seed"] == [0.5, 0.0] and d["n"] == 5 and d["seeds"] == 2


def test_interval_carries_the_spread_between_seeds() -> None:
    """Two seeds that disagree completely (every prompt +1 in one, 0 in the other) have no
    prompt noise at all: the interval is the seeds' spread, [0, 1], where pooling the prompts
    as if one run would claim a narrow one around 0.5."""
    ids = [str(i) for i in range(50)]
    up = ({i: R for i in ids}, {i: C for i in ids})
    same = ({i: C for i in ids}, {i: C for i in ids})
    d = pooled_paired_bootstrap([up, same], 1000, seed=1)
    assert d["diff"] == 0.5 and d["ci"] == [0.0, 1.0]
    flat = pooled_paired_bootstrap([up, up, up], 300, seed=1)
    assert flat["diff"] == 1.0 and flat["ci"] == [1.0, 1.0]  # no noise of either kind: zero width
    assert pooled_paired_bootstrap([({}, {}), ({}, {})])["diff"] is None


def test_gamma_curve_over_seeds_runs_through_the_seed_mean_with_the_range_as_band() -> None:
    from tbr.report.html import _seed_series

    def agg(source: str, gamma: float, pl: str, vals: list[float]) -> dict:
        return {"model": "m", "source": source, "gamma": gamma, "mode": "plain", "prompt_label": pl,
                "mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals)}
    m = {"across_seeds": [agg("none", 0.0, "safe", [0.1, 0.3]), agg("builtin", 0.5, "safe", [0.4, 0.6]),
                          agg("builtin", 1.0, "safe", [0.5, 0.9]), agg("none", 0.0, "unsafe", [0.0, 0.1]),
                          agg("builtin", 1.0, "unsafe", [0.1, 0.1])]}
    s = _seed_series(m, "plain")
    assert s["builtin safe (seed mean)"] == [(0.0, pytest.approx(0.2), [0.1, 0.3]), (0.5, 0.5, [0.4, 0.6]),
                                            (1.0, pytest.approx(0.7), [0.5, 0.9])]
    assert s["builtin unsafe (seed mean)"] == [(0.0, 0.05, [0.0, 0.1]), (1.0, 0.1, [0.1, 0.1])]
    assert set(s) == {"builtin safe (seed mean)", "builtin unsafe (seed mean)"}
