"""`tbr compare` on two hand-made runs: exact table cells, files, and errors."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tbr.errors import TbrError
from tbr.metrics import breakdown, wilson
from tbr.report.compare import ALL_SUITES, build_table, load_run, markdown_table, write_compare

FC, FR = "full_compliance", "full_refusal"


def _rows(suite: str, safe: list[str], unsafe: list[str]) -> list[dict]:
    return ([{"prompt_label": "safe", "type": "homonyms", "label": lab, "suite": suite} for lab in safe]
            + [{"prompt_label": "unsafe", "type": "contrast", "label": lab, "suite": suite} for lab in unsafe])


def _judged(xs_safe, xs_unsafe, or_safe, or_unsafe) -> dict:
    a, b = _rows("xstest", xs_safe, xs_unsafe), _rows("orbench", or_safe, or_unsafe)
    return {"all": breakdown(a + b), "by_suite": {"orbench": breakdown(b), "xstest": breakdown(a)}}


def _write_run(root: Path, primary: str, models: dict[str, dict], general: dict | None = None,
               under_evaluate: bool = False) -> Path:
    other = "xstest-prefix"   # a second judge whose (all-refusal) labels must not be used
    judged = {lab: {"plain": {primary: j, other: _judged([FR], [FR], [FR], [FR])}}
              for lab, j in models.items()}
    metrics = {"primary_judge": primary, "judges": [primary, other], "modes": ["plain"], "models": judged,
               "paired": [], "cells": {}, "n_prompts": {"safe": 0, "unsafe": 0}}
    target = root / "evaluate" / "metrics.json" if under_evaluate else root / "metrics.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(metrics))
    if general is not None:
        (root / "general").mkdir(parents=True, exist_ok=True)
        (root / "general" / "general.json").write_text(json.dumps(general))
    return root


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    base = _write_run(tmp_path / "runs" / "base", "tbr", {
        # xstest: safe 3/4 comply, unsafe 0/2; orbench: safe 1/4, unsafe 1/2
        "untouched": _judged([FC, FC, FC, FR], [FR, FR], [FC, FR, FR, FR], [FC, FR]),
        "baseline": _judged([FC, FR, FR, FR], [FR, FR], [FR, FR, FR, FR], [FR, FR]),
    }, general={"untouched": {"tbr_arc_mini": {"acc": 0.6, "acc_stderr": 0.1, "acc_norm": 0.5, "n": 5}},
                "baseline": {"tbr_arc_mini": {"acc": 0.4, "acc_stderr": 0.12, "n": 5},
                             "gsm8k": {"exact_match,strict-match": 0.25,
                                       "exact_match_stderr,strict-match": 0.05, "n": 20}}})
    tbr = _write_run(tmp_path / "runs" / "tuned", "keywords", {
        "tbr": _judged([FC, FC, FC, FC], [FC, FR], [FC, FC, FR, FR], [FR, FR]),
    }, under_evaluate=True)
    return base, tbr


def test_table_cells_exact(two_runs):
    base, tuned = two_runs
    t = build_table([load_run(base), load_run(tuned)])
    assert [c.header for c in t.columns] == ["base/untouched", "base/baseline", "tuned/tbr"]
    assert [c.judge for c in t.columns] == ["tbr", "tbr", "keywords"]
    assert [(r.section, r.name) for r in t.rows] == [
        ("false refusal", "orbench"), ("false refusal", "xstest"), ("false refusal", ALL_SUITES),
        ("safety", "orbench"), ("safety", "xstest"), ("safety", ALL_SUITES),
        ("general", "tbr_arc_mini (acc)"), ("general", "gsm8k (exact_match,strict-match)")]

    def vals(section, name):
        return [None if c is None else c.value for c in t.row(section, name).cells]
    assert vals("false refusal", "xstest") == [0.75, 0.25, 1.0]
    assert vals("false refusal", "orbench") == [0.25, 0.0, 0.5]
    assert vals("false refusal", ALL_SUITES) == [0.5, 0.125, 0.75]
    assert vals("safety", "xstest") == [0.0, 0.0, 0.5]
    assert vals("safety", "orbench") == [0.5, 0.0, 0.0]
    assert vals("safety", ALL_SUITES) == [0.25, 0.0, 0.25]
    assert vals("general", "tbr_arc_mini (acc)") == [0.6, 0.4, None]
    assert vals("general", "gsm8k (exact_match,strict-match)") == [None, 0.25, None]
    cell = t.row("false refusal", "xstest").cells[0]
    assert cell.n == 4 and cell.ci == pytest.approx(wilson(3, 4))
    g = t.row("general", "gsm8k (exact_match,strict-match)").cells[1]
    assert (g.stderr, g.n) == (0.05, 20)

    lines = markdown_table(t)
    assert lines[0] == "| metric | base/untouched | base/baseline | tuned/tbr |"
    assert "| **false refusal** | | | |" in lines
    assert "| xstest: safe CR ↑ | 0.750 | 0.250 | 1.000 |" in lines
    assert "| all suites: unsafe CR ↓ | 0.250 | 0.000 | 0.250 |" in lines
    assert "| tbr_arc_mini (acc) ↑ | 0.600 | 0.400 | n/a |" in lines
    lo, hi = wilson(3, 4)
    assert f"| xstest: safe CR ↑ | 0.750 [{lo:.2f}, {hi:.2f}] (n=4) |" in "\n".join(markdown_table(t, detailed=True))
    assert "| tbr_arc_mini (acc) ↑ | 0.600 ± 0.100 (n=5) | 0.400 ± 0.120 (n=5) | n/a |" in markdown_table(t, True)


def test_write_compare_files_and_cli(two_runs, tmp_path, capsys):
    from tbr.cli import main
    base, tuned = two_runs
    out = tmp_path / "cmp"
    assert main(["compare", str(base), str(tuned), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| xstest: safe CR ↑ | 0.750 | 0.250 | 1.000 |" in printed
    md = (out / "compare.md").read_text()
    assert "| xstest: safe CR ↑ | 0.750 | 0.250 | 1.000 |" in md and "![compliance](compare.png)" in md
    assert "different primary judges" in md
    rows = list(csv.reader((out / "compare.csv").open()))
    assert rows[0] == ["section", "metric", "direction", "base/untouched", "base/baseline", "tuned/tbr"]
    assert ["safety", "xstest", "lower", "0.0", "0.0", "0.5"] in rows
    assert ["general", "tbr_arc_mini (acc)", "higher", "0.6", "0.4", ""] in rows
    data = json.loads((out / "compare.json").read_text())
    assert data["rows"][0]["cells"][0]["ci"] == pytest.approx(list(wilson(1, 4)))
    png = (out / "compare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_single_suite_has_no_all_row_and_same_names_are_told_apart(tmp_path):
    one = {"plain": {"tbr": {"all": breakdown(_rows("xstest", [FC, FR], [FR])),
                             "by_suite": {"xstest": breakdown(_rows("xstest", [FC, FR], [FR]))}}}}
    for parent in ("a", "b"):
        d = tmp_path / parent / "demo"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"primary_judge": "tbr", "modes": ["plain"],
                                                    "models": {"tbr": one}}))
    t = build_table([load_run(tmp_path / "a" / "demo"), load_run(tmp_path / "b" / "demo")])
    assert [c.header for c in t.columns] == ["a/demo/tbr", "b/demo/tbr"]
    assert [(r.section, r.name) for r in t.rows] == [("false refusal", "xstest"), ("safety", "xstest")]
    assert [c.value for c in t.rows[0].cells] == [0.5, 0.5]
    result = write_compare([tmp_path / "a" / "demo"], tmp_path / "out")
    assert (tmp_path / "out" / "compare.png").exists() and "png" in result["files"]


def test_errors(tmp_path, two_runs, capsys):
    from tbr.cli import main
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TbrError, match="no metrics.json"):
        load_run(empty)
    with pytest.raises(TbrError, match="no such run folder"):
        load_run(tmp_path / "missing")
    assert main(["compare", str(empty), "--output", str(tmp_path / "o")]) == 2
    assert "no metrics.json" in capsys.readouterr().err
    with pytest.raises(TbrError, match="mode 'cot' was not evaluated"):
        build_table([load_run(two_runs[0])], mode="cot")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text("{}")
    with pytest.raises(TbrError, match="not a tbr metrics.json"):
        load_run(bad)


def test_a_cell_on_several_seeds_gets_a_mean_column_with_its_across_seed_interval(tmp_path: Path) -> None:
    from tbr.seeds import seed_interval
    root = _write_run(tmp_path / "runs" / "s", "tbr", {
        "baseline-s0": _judged([FR, FR], [FR, FR], [FR, FR], [FR, FR]),
        "tbr-s0": _judged([FC, FR], [FR, FR], [FC, FC], [FR, FR]),      # safe all suites: 3/4
        "tbr-s1": _judged([FC, FC], [FC, FR], [FR, FR], [FR, FR]),      # 2/4
        "tbr-s2": _judged([FC, FC], [FR, FR], [FC, FC], [FR, FR]),      # 4/4
    })
    m = json.loads((root / "metrics.json").read_text())
    m["across_seeds"] = [{"name": "tbr", "labels": ["tbr-s0", "tbr-s1", "tbr-s2"], "seeds": 3},
                         {"name": "baseline", "labels": ["baseline-s0"], "seeds": 1}]
    (root / "metrics.json").write_text(json.dumps(m))
    t = build_table([load_run(root)])
    assert [c.label for c in t.columns] == ["baseline-s0", "tbr-s0", "tbr-s1", "tbr-s2", "tbr (mean of 3 seeds)"]
    cell = t.row("false refusal", ALL_SUITES).cells[-1]
    want = seed_interval([0.75, 0.5, 1.0])
    assert cell.value == pytest.approx(0.75) and cell.ci == pytest.approx(tuple(want["ci"]))
    assert t.row("safety", ALL_SUITES).cells[-1].value == pytest.approx(1 / 12)
