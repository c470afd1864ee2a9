"""Per-model bias, differential bias, group scores and run-level judge agreement, against values
worked out by hand; `uncertain` handled like `unparsed` everywhere a rate is computed."""
from __future__ import annotations

import pytest

from tbr.judges import Verdict
from tbr.judges.bias import bias_diff_ci, clear_pairs, compliance_rate, differential_bias, model_bias
from tbr.judges.evaluation import evaluate_judge, group_scores, summary_markdown, to_binary
from tbr.metrics import paired_bootstrap, rates
from tbr.stages.evaluate import judge_agreement

FC, FR, PR, UN, UC = "full_compliance", "full_refusal", "partial_refusal", "unparsed", "uncertain"


class Scripted:
    name = "scripted"

    def __init__(self, labels):
        self.labels = labels

    def judge(self, rows):
        return [Verdict(x) for x in self.labels]


def test_uncertain_is_neither_refusal_nor_compliance():
    assert to_binary(UC) is None
    r = rates([FC, FC, FR, UC, UN])
    # 3 decided rows, 2 compliant; uncertain and unparsed each counted apart
    assert r["n"] == 3 and r["compliance"] == pytest.approx(2 / 3) and r["unparsed"] == 1 and r["uncertain"] == 1
    assert "uncertain" not in rates([FC, FR])  # only present where a judge abstained
    assert compliance_rate([FC, UC, FR, FR]) == pytest.approx(1 / 3)
    d = paired_bootstrap({"p1": FC, "p2": UC, "p3": FR}, {"p1": FR, "p2": FC, "p3": FR}, n_boot=10)
    assert d["n"] == 2 and d["diff"] == pytest.approx(-0.5)  # p2 left out: undecided on one side


def test_model_bias_by_hand():
    rows = [{"model": "a", "prompt_label": "safe"}] * 4 + [{"model": "a", "prompt_label": "unsafe"}] * 2 \
        + [{"model": "b", "prompt_label": "safe"}] * 4
    gold = [FC, FC, FC, FR, FR, FR, FC, FC, FR, FR]
    pred = [FC, FC, FR, FR, FC, FR, FC, FC, FC, UC]
    b = model_bias(rows, gold, pred)
    # a/safe: judge 2/4 compliant, gold 3/4 -> -0.25; a/unsafe: judge 1/2, gold 0/2 -> +0.5
    assert b["a"]["safe"] == {"n": 4, "judge_cr": 0.5, "gold_cr": 0.75, "bias": -0.25}
    assert b["a"]["unsafe"]["bias"] == pytest.approx(0.5)
    # b/safe: the uncertain row leaves the judge's CR (3/3 decided) and stays in gold's (2/4)
    assert b["b"]["safe"]["judge_cr"] == 1.0 and b["b"]["safe"]["gold_cr"] == 0.5
    assert b["b"]["safe"]["bias"] == pytest.approx(0.5)
    rows_e = [dict(r, experiment="x") for r in rows]
    d = differential_bias(b, rows_e)
    assert d == [{"experiment": "x", "a": "a", "b": "b", "prompt_label": "safe", "n_a": 4, "n_b": 4,
                  "diff": pytest.approx(0.75)}]  # +0.5 - (-0.25)
    assert differential_bias(b, rows) == []  # no experiment: models are not compared
    # with the labels, each pair also carries its bootstrap interval, around the point estimate
    (d,) = differential_bias(b, rows_e, gold, pred, n_boot=500)
    assert d["ci"][0] <= 0.75 <= d["ci"][1] and d["ci"][0] < d["ci"][1]


def test_bias_diff_ci_exact_cases():
    # the judge is right on every row of both models: every resample has zero bias on each side
    same = [(FC, FC), (FR, FR), (PR, PR)]
    assert bias_diff_ci(same, same, n_boot=200) == [0.0, 0.0]
    # b: the judge calls every refusal a compliance (bias +1 in every resample), a: always right
    assert bias_diff_ci([(FR, FR)] * 3, [(FR, FC)] * 3, n_boot=200) == [1.0, 1.0]
    # an undecided prediction leaves the judge's CR, not the gold's: a resample of b holding both rows has
    # bias 1/1 - 1/2 = +0.5, one holding only the first 0, one holding only the undecided row is dropped (0/0)
    lo, hi = bias_diff_ci([(FC, FC)], [(FC, FC), (FR, UC)], n_boot=400)
    assert lo == 0.0 and hi == 0.5
    assert bias_diff_ci([], same) == [None, None]
    # seeded: the same call gives the same interval
    rows = [(FC, FR), (FR, FR), (FC, FC), (FR, FC)]
    assert bias_diff_ci(rows, rows[::-1] * 2) == bias_diff_ci(rows, rows[::-1] * 2)


def test_clear_pairs_counts_intervals_excluding_zero():
    res = {"differential_bias": [{"diff": 0.3, "ci": [0.1, 0.5]}, {"diff": -0.1, "ci": [-0.3, 0.1]},
                                 {"diff": -0.2, "ci": [-0.4, -0.05]}, {"diff": None, "ci": [None, None]}]}
    assert clear_pairs(res) == (2, 3)


def test_group_scores_and_evaluate_judge_tables():
    rows = [{"id": str(i), "prompt": "p", "response": "r", "label": g, "model": m, "family": f,
             "source": s, "prompt_label": "safe", "experiment": "e"}
            for i, (g, m, f, s) in enumerate([(FC, "m1", "x", "project"), (FR, "m1", "x", "project"),
                                              (PR, "m2", "y", "written"), (FC, "m2", "y", "written")])]
    res = evaluate_judge(Scripted([FC, FC, FR, UC]), rows)
    assert res["per_model"]["m1"]["binary_accuracy"] == 0.5 and res["per_model"]["m1"]["accuracy"] == 0.5
    # m2: PR judged FR is binary-right, 3-class wrong; UC is an error in accuracy
    assert res["per_model"]["m2"]["binary_accuracy"] == 0.5 and res["per_model"]["m2"]["accuracy"] == 0.0
    assert res["per_model"]["m2"]["undecided"] == 1
    assert set(res["per_source"]) == {"project", "written"} and set(res["per_family"]) == {"x", "y"}
    assert res["three_class"]["uncertain"] == 1 and res["binary"]["uncertain"] == 1
    g = group_scores(rows, [r["label"] for r in rows], [FC, FR, PR, FC], "family")
    assert g["x"]["accuracy"] == 1.0 and g["y"]["accuracy"] == 1.0
    md = summary_markdown([res], "test", len(rows))
    assert "| scripted | 0.500 | 0.250 |" in md and "m2" in md


def test_judge_agreement_counts_and_rows():
    def rows(labels):
        return [{"id": f"p{i}", "mode": "plain", "prompt": "q", "response": "r", "label": x}
                for i, x in enumerate(labels)]
    judged = {"m": {"tbr": rows([FC, FR, PR, FC, UC]), "keywords": rows([FC, FR, FR, FR, FR])}}
    per, dis = judge_agreement(judged, "tbr")
    x = per["m"]["keywords"]
    # 3-class: rows 2, 3, 4 differ -> 3/5; binary over rows decided by both (0-3): only row 3 -> 1/4
    assert x == {"n": 5, "three_class_disagreement": 0.6, "binary_disagreement": 0.25}
    assert [d["id"] for d in dis] == ["p3"] and dis[0]["labels"] == {"tbr": FC, "keywords": FR}
