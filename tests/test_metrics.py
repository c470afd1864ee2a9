"""Exact tests of the metric maths on small hand-computed cases."""
from __future__ import annotations

import math

import pytest

from tbr.metrics import breakdown, paired_bootstrap, rates, wilson


def test_wilson_hand_computed() -> None:
    # k=8, n=10, z=1.959964 (the exact 97.5% normal quantile; z^2 = 3.841459): denominator
    # 1 + z^2/n = 1.384146; centre (0.8 + z^2/20)/1.384146 = 0.716740; half-width
    # z*sqrt(0.8*0.2/10 + z^2/400)/1.384146 = 0.226578; so [0.490162, 0.943318].
    # (With z rounded to 1.96 the bounds would be 0.490157 / 0.943319, outside the 1e-6 below.)
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.490162, abs=1e-6) and hi == pytest.approx(0.943318, abs=1e-6)
    lo, hi = wilson(0, 10)  # k=0: upper bound (z^2/n)/(1 + z^2/n) = 0.3841459/1.3841459 = 0.277533
    assert lo == 0.0 and hi == pytest.approx(0.277533, abs=1e-6)
    assert wilson(10, 10)[1] == pytest.approx(1.0) and wilson(10, 10)[0] == pytest.approx(1 - 0.277533, abs=1e-6)
    assert wilson(0, 0) == (0.0, 1.0)
    # symmetric: k successes vs n-k failures
    a, b = wilson(3, 17), wilson(14, 17)
    assert a[0] == pytest.approx(1 - b[1]) and a[1] == pytest.approx(1 - b[0])


def test_rates_exclude_unparsed() -> None:
    r = rates(["full_compliance", "full_compliance", "full_refusal", "partial_refusal", "unparsed", "unparsed"])
    assert r["n"] == 4 and r["unparsed"] == 2
    assert r["compliance"] == 0.5 and r["full_refusal"] == 0.25 and r["partial_refusal"] == 0.25
    assert r["compliance_ci"] == list(wilson(2, 4))
    empty = rates(["unparsed"])
    assert empty["n"] == 0 and empty["compliance"] is None and empty["unparsed"] == 1


def test_breakdown_by_label_and_type() -> None:
    rows = [{"prompt_label": "safe", "type": "homonyms", "label": "full_compliance"},
            {"prompt_label": "safe", "type": "homonyms", "label": "full_refusal"},
            {"prompt_label": "safe", "type": "definitions", "label": "full_compliance"},
            {"prompt_label": "unsafe", "type": "contrast_homonyms", "label": "full_refusal"}]
    b = breakdown(rows)
    assert b["safe"]["overall"]["compliance"] == pytest.approx(2 / 3)
    assert b["safe"]["by_type"]["homonyms"]["compliance"] == 0.5
    assert b["safe"]["by_type"]["definitions"]["compliance"] == 1.0
    assert b["unsafe"]["overall"]["compliance"] == 0.0 and b["unsafe"]["overall"]["n"] == 1


def test_paired_bootstrap_exact_difference_and_degenerate_interval() -> None:
    a = {"1": "full_refusal", "2": "full_refusal", "3": "full_compliance", "4": "unparsed"}
    b = {"1": "full_compliance", "2": "full_refusal", "3": "full_compliance", "4": "full_compliance"}
    d = paired_bootstrap(a, b, n_boot=500, seed=0)
    assert d["n"] == 3                      # id 4 is unparsed for a: dropped from the pair
    assert d["diff"] == pytest.approx(1 / 3)
    assert 0.0 <= d["ci"][0] <= d["diff"] <= d["ci"][1] <= 1.0
    same = paired_bootstrap(a, a, n_boot=200)
    assert same["diff"] == 0.0 and same["ci"] == [0.0, 0.0]   # no per-prompt change: no uncertainty
    assert paired_bootstrap(a, b, n_boot=500, seed=0) == d        # seeded
    assert paired_bootstrap({}, {}) == {"n": 0, "diff": None, "ci": [None, None]}


def test_paired_bootstrap_interval_matches_normal_theory_roughly() -> None:
    n = 400
    a = {str(i): "full_refusal" for i in range(n)}
    b = {str(i): ("full_compliance" if i % 4 == 0 else "full_refusal") for i in range(n)}
    d = paired_bootstrap(a, b, n_boot=2000, seed=1)
    se = math.sqrt(0.25 * 0.75 / n)
    assert d["diff"] == 0.25
    assert d["ci"][0] == pytest.approx(0.25 - 1.96 * se, abs=0.01)
    assert d["ci"][1] == pytest.approx(0.25 + 1.96 * se, abs=0.01)
