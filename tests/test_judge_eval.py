"""Judge-accuracy metrics against hand-computed values, and the report files."""
from __future__ import annotations

import json

import pytest

from tbr.errors import TbrError
from tbr.judges import Verdict
from tbr.judges.evaluation import accuracy, cohen_kappa, confusion, evaluate_judge, to_binary, write_judge_eval

FC, FR, PR, UN = "full_compliance", "full_refusal", "partial_refusal", "unparsed"


def test_confusion_rows_gold_columns_pred():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    assert confusion(gold, pred, ["a", "b", "c"]) == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    with pytest.raises(ValueError):
        confusion(["a"], ["z"], ["a", "b"])
    with pytest.raises(ValueError):
        confusion(["a"], [], ["a"])


def test_accuracy():
    assert accuracy(["a", "b", "c", "a"], ["a", "b", "a", "a"]) == 0.75
    assert accuracy([], []) is None


def test_cohen_kappa_three_classes_by_hand():
    # p_o = 4/6; gold a3 b2 c1, pred a2 b2 c2 -> p_e = (6 + 4 + 2) / 36 = 1/3; kappa = (2/3 - 1/3) / (2/3)
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    assert cohen_kappa(gold, pred) == pytest.approx(0.5, abs=1e-12)


def test_cohen_kappa_two_by_two_table():
    # yes/yes 20, yes/no 5, no/yes 10, no/no 15: p_o = .7, p_e = (25*30 + 25*20) / 2500 = .5 -> .4
    gold = ["y"] * 25 + ["n"] * 25
    pred = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(gold, pred) == pytest.approx(0.4, abs=1e-12)


def test_cohen_kappa_edges():
    assert cohen_kappa(["a", "b"], ["a", "b"]) == 1.0
    assert cohen_kappa(["a", "b"], ["b", "a"]) == -1.0
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # chance agreement 1: undefined
    assert cohen_kappa([], []) is None


def test_binary_collapse():
    assert [to_binary(x) for x in (FC, FR, PR, UN)] == ["compliance", "refusal", "refusal", None]


class Scripted:
    name = "scripted"

    def __init__(self, labels):
        self.labels = labels

    def judge(self, rows):
        return [Verdict(lab, {"why": f"rule {i}"}) for i, lab in enumerate(self.labels)]


ROWS = [
    {"id": "r1", "prompt": "p", "response": "x", "label": FC, "phenomenon": "sorry_to_hear"},
    {"id": "r2", "prompt": "p", "response": "x", "label": FC, "phenomenon": "sorry_to_hear"},
    {"id": "r3", "prompt": "p", "response": "x", "label": FR, "phenomenon": "lecture"},
    {"id": "r4", "prompt": "p", "response": "x", "label": PR, "phenomenon": "partial"},
    {"id": "r5", "prompt": "p", "response": "x", "label": FR, "phenomenon": "lecture"},
]


def test_evaluate_judge_by_hand():
    pred = [FC, FR, FR, FR, UN]
    res = evaluate_judge(Scripted(pred), ROWS)
    t, b = res["three_class"], res["binary"]
    # parsed rows r1..r4: correct r1, r3 -> 2 of 5 overall, 2 of 4 parsed
    assert t["n"] == 5 and t["unparsed"] == 1
    assert t["accuracy"] == pytest.approx(2 / 5) and t["accuracy_parsed"] == pytest.approx(2 / 4)
    assert t["confusion"]["matrix"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    # kappa on parsed: gold FC2 FR1 PR1, pred FC1 FR3 -> p_o = .5, p_e = (2*1 + 1*3) / 16
    assert t["kappa"] == pytest.approx((0.5 - 5 / 16) / (1 - 5 / 16))
    # binary parsed: gold C C R R, pred C R R R -> 3/4 parsed, 3/5 overall
    assert b["accuracy"] == pytest.approx(3 / 5) and b["accuracy_parsed"] == pytest.approx(3 / 4)
    assert b["confusion"]["matrix"] == [[1, 1], [0, 2]]
    assert b["kappa"] == pytest.approx(0.5)  # p_o .75, p_e (2*1 + 2*3)/16 = .5
    assert b["refusal_precision"] == pytest.approx(2 / 3) and b["refusal_recall"] == 1.0
    assert res["counts"]["pred"] == {FC: 1, FR: 3, PR: 0, UN: 1, "uncertain": 0}
    assert res["counts"]["gold"] == {FC: 2, FR: 2, PR: 1}
    ph = {k: {f: v[f] for f in ("n", "accuracy", "binary_accuracy")} for k, v in res["per_phenomenon"].items()}
    assert ph["sorry_to_hear"] == {"n": 2, "accuracy": 0.5, "binary_accuracy": 0.5}
    assert ph["lecture"] == {"n": 2, "accuracy": 0.5, "binary_accuracy": 0.5}
    assert ph["partial"] == {"n": 1, "accuracy": 0.0, "binary_accuracy": 1.0}
    assert res["per_phenomenon"]["lecture"]["undecided"] == 1  # r5
    assert [f["id"] for f in res["failures"]] == ["r2", "r4", "r5"]
    assert res["failures"][2]["pred"] == UN and res["failures"][0]["raw"] == {"why": "rule 1"}


def test_evaluate_judge_rejects_bad_gold_labels():
    with pytest.raises(TbrError, match="label must be one of"):
        evaluate_judge(Scripted([FC]), [{"id": "x", "prompt": "p", "response": "r", "label": "refusal"}])


def test_evaluate_judge_without_phenomenon():
    rows = [{k: v for k, v in r.items() if k != "phenomenon"} for r in ROWS]
    res = evaluate_judge(Scripted([FC, FC, FR, PR, FR]), rows)
    assert "per_phenomenon" not in res and res["failures"] == []
    assert res["three_class"]["accuracy"] == 1.0 and res["three_class"]["kappa"] == 1.0


def test_write_judge_eval(tmp_path):
    res = evaluate_judge(Scripted([FC, FR, FR, FR, UN]), ROWS)
    out = write_judge_eval(res, tmp_path / "eval")
    assert sorted(p.name for p in out.iterdir()) == ["confusion.png", "judge_eval.json", "judge_eval.md"]
    assert json.loads((out / "judge_eval.json").read_text())["three_class"]["unparsed"] == 1
    md = (out / "judge_eval.md").read_text()
    assert "| accuracy (unparsed = wrong) | 0.400 | 0.600 |" in md and "| r5 | full_refusal | unparsed |" in md
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
