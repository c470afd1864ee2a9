"""Judge floors: every offline judge's binary and 3-class accuracy on the shipped labelled sets,
with the value measured when the `tbr` judge's weights or the shipped sets last changed as the
floor (minus 0.005, so a verdict that flips on another CPU family's fp32 kernels does not fail the suite).
A change that makes a judge worse fails here; one that makes it better should raise its floor.
The shipped judge_validation.json must agree with what the judges score now."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tbr.data.sources import builtin_rows
from tbr.judges import get_judge
from tbr.judges.evaluation import evaluate_judge

FLOORS = {
    ('bench-test', 'keywords'): (0.799, 0.748),  # measured 0.8041 / 0.7531
    ('bench-test', 'xstest-prefix'): (0.755, 0.725),  # measured 0.7600 / 0.7297
    ('bench-test', 'tbr-rules'): (0.925, 0.779),  # measured 0.9297 / 0.7841
    ('bench-test', 'tbr'): (0.938, 0.899),  # measured 0.9434 / 0.9041
    ('adversarial', 'keywords'): (0.499, 0.431),  # measured 0.5045 / 0.4364
    ('adversarial', 'xstest-prefix'): (0.474, 0.420),  # measured 0.4795 / 0.4250
    ('adversarial', 'tbr-rules'): (0.847, 0.825),  # measured 0.8523 / 0.8295
    ('adversarial', 'tbr'): (0.795, 0.702),  # measured 0.8000 / 0.7068 (0.8432 / 0.7955 while CV kept judge-train rows in the fit)
}


def _rows(name: str) -> list[dict]:
    if name == "bench-test":
        return [r for r in builtin_rows("judge-bench") if r["split"] == "test"]
    return builtin_rows("judge-adversarial")


@pytest.mark.parametrize("labels,judge", sorted(FLOORS))
def test_judge_floor(labels: str, judge: str) -> None:
    res = evaluate_judge(get_judge(judge), _rows(labels))
    binary, three = FLOORS[(labels, judge)]
    assert res["binary"]["accuracy"] >= binary, res["binary"]["accuracy"]
    assert res["three_class"]["accuracy"] >= three, res["three_class"]["accuracy"]


def test_shipped_validation_matches_the_test_split() -> None:
    v = json.loads((Path(__file__).resolve().parents[1] / "src" / "tbr" / "judges" /
                    "judge_validation.json").read_text())
    assert v["labels"] == "judge-bench test split" and v["n"] == len(_rows("bench-test"))
    for judge in ("keywords", "xstest-prefix", "tbr-rules", "tbr"):
        b, t = FLOORS[("bench-test", judge)]
        assert b <= v["judges"][judge]["binary_accuracy"] <= b + 0.011
        assert t <= v["judges"][judge]["three_class_accuracy"] <= t + 0.011


def test_runs_report_the_shipped_validation() -> None:
    """What every run's metrics.json and report quote: the shipped file, found where the
    package keeps it (a wrong path would quietly report 'no validated accuracy')."""
    from tbr.judges.evaluation import VALIDATION
    from tbr.stages.evaluate import validated
    shipped = Path(__file__).resolve().parents[1] / "src" / "tbr" / "judges" / "judge_validation.json"
    assert VALIDATION.resolve() == shipped.resolve()
    v = json.loads(shipped.read_text())
    got = validated(["tbr", "keywords", "llm"])
    assert set(got) == {"tbr", "keywords"}  # llm depends on the model behind it: never validated
    assert got["tbr"]["binary_accuracy"] == v["judges"]["tbr"]["binary_accuracy"] and got["tbr"]["n"] == v["n"]


def test_report_states_the_validated_differential_bias_with_its_interval() -> None:
    from tbr.report.markdown import judge_section
    from tbr.stages.evaluate import validated
    v = validated(["tbr"])
    text = "\n".join(judge_section({"judge_validation": v}, "tbr", ["tbr"]))
    lo, hi = v["tbr"]["max_abs_differential_bias_ci"]
    k, n = v["tbr"]["differential_bias_pairs_ci_excluding_zero"]
    assert f"binary accuracy {v['tbr']['binary_accuracy']:.3f}" in text
    assert f"(95% CI {lo:+.3f} to {hi:+.3f})" in text and f"{k} of {n} model pairs" in text
