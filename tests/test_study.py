"""The study (configs/study.yaml, `tbr study`, RESULTS.md): configs checked up front, stages shared
between experiments by fingerprint, and a RESULTS.md whose every figure is its runs' own."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import tiny_overrides
from tbr.cli import main
from tbr.config import parse_override
from tbr.errors import TbrError
from tbr.report.results import meets_bar
from tbr.stages.runner import reuse_from, run_stage
from tbr.study import Bar, load_study

REPO = Path(__file__).resolve().parents[1]


def test_the_shipped_study_covers_every_experiment_of_the_issue() -> None:
    s = load_study(REPO / "configs" / "study.yaml")
    by = {e.name: e.config for e in s.experiments}
    assert by["claim"].seed == [0, 1, 2] and by["claim"].build.benign == [0.0, 0.3]
    assert by["content"].seed == [0, 1, 2]
    assert set(by["content"].reflect.source) == {"builtin", "shuffled", "generic"}  # none = the baseline cell
    assert by["gamma"].build.gamma == [0.0, 0.25, 0.5, 0.75, 1.0] and len(by["gamma"].seed) >= 2
    assert {by["dpo"].train.method, by["sft-dpo"].train.method} == {"dpo", "sft+dpo"}
    assert by["full-ft"].train.lora.enabled is False
    assert by["attacks"].evaluate.attacks == ["all"] and by["attacks"].seed == [0]
    assert all(str(c.run_dir) == f"runs/study/{n}" for n, c in by.items())
    # the experiments share the base's data and reflections: what lets them share cells
    assert len({json.dumps([c.data.__dict__.__repr__(), c.seed[0]]) for c in by.values()}) == 1


def _write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


@pytest.mark.parametrize("data, message", [
    ({"experiments": [{"name": "a"}], "colour": 1}, "unknown study key 'colour'"),
    ({"experiments": []}, "experiments: expected a non-empty list"),
    ({"experiments": [{"name": "a"}, {"name": "a"}]}, "experiments[1].name: 'a' appears twice"),
    ({"experiments": [{"name": "a/b"}]}, "experiments[0].name: expected a folder-safe name"),
    ({"experiments": [{"name": "a", "runs": 1}]}, "experiments[0]: unknown key 'runs'"),
    ({"experiments": [{"name": "a", "set": {"name": "x"}}]}, "name and runs_dir are set by the study"),
    ({"base": {"name": "x"}, "experiments": [{"name": "a"}]}, "base.name: set by the study"),
    ({"experiments": [{"name": "a"}, {"name": "b", "set": {"train.epoch": 2}}]},
     "experiment b: unknown config key 'train.epoch'"),
    ({"bar": {"min_safe_gain": "lots"}, "experiments": [{"name": "a"}]}, "bar: expected"),
])
def test_a_bad_study_is_one_line_naming_the_file_and_the_key(tmp_path: Path, data: object, message: str) -> None:
    p = _write(tmp_path, data)
    with pytest.raises(TbrError) as e:
        load_study(p)
    assert message in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)


def test_bar_edges() -> None:
    bar = Bar(min_safe_gain=0.10, max_unsafe_rise=0.02, max_unsafe_upper=0.04)
    assert meets_bar({"diff": 0.10}, {"diff": 0.0, "ci": [-0.02, 0.04]}, bar) is True
    assert meets_bar({"diff": 0.10}, {"diff": 0.02, "ci": [0.0, 0.04]}, bar) is True
    assert meets_bar({"diff": 0.10}, {"diff": 0.021, "ci": [0.0, 0.035]}, bar) is False
    assert meets_bar({"diff": 0.099}, {"diff": 0.0, "ci": [-0.02, 0.01]}, bar) is False
    assert meets_bar({"diff": 0.30}, {"diff": 0.0, "ci": [-0.02, 0.041]}, bar) is False
    assert meets_bar({"diff": 0.30}, {"diff": None, "ci": [None, None]}, bar) is None


def _stage(root: Path, fp: str, calls: list[str], owner: str = "run") -> dict:
    def fn(out: Path) -> dict:
        calls.append(str(root))
        (out / "rows.jsonl").write_text("done\n", encoding="utf-8")
        return {"rows": 1}
    return run_stage(root / "train" / "cell", stage="train", label="train [x]", fp=fp, config={}, inputs={},
                     fn=fn, outputs=["rows.jsonl"], announce=False, owner=owner)


def test_a_stage_another_run_finished_with_the_same_fingerprint_is_copied_not_redone(tmp_path: Path) -> None:
    calls: list[str] = []
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _stage(a, "fp1", calls)
    with reuse_from(b, [a, b]):
        m = _stage(b, "fp1", calls, owner="tbr-s0")
    assert calls == [str(a)]  # b's stage was not run
    assert (b / "train" / "cell" / "rows.jsonl").read_text() == "done\n"
    assert m["copied_from"] == str(a / "train" / "cell") and m["subject"] == "tbr-s0"
    assert json.loads((a / "train" / "cell" / "manifest.json").read_text())["subject"] == "run"  # donor untouched
    assert not list(b.rglob(".*.tmp"))
    with reuse_from(c, [a]):
        _stage(c, "fp2", calls)  # another fingerprint: other work, done here
    assert calls == [str(a), str(c)]
    _stage(tmp_path / "d", "fp1", calls)  # outside a study nothing is shared
    assert calls[-1] == str(tmp_path / "d")


def _row(text: str, section: str, name: str, table: int) -> list[str]:
    """Cells of the row named `name` in the `table`-th table (0: compliance, 1: paired) of a section."""
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    tables = re.findall(r"((?:^\|.*\|$\n?)+)", body, flags=re.M)
    for line in tables[table].splitlines():
        cells = [x.strip() for x in line.strip("|").split("|")]
        if cells[0] == name:
            return cells
    raise AssertionError(f"no row {name} in {section}")


def _num(cell: str) -> float:
    return float(cell.split(" [")[0])


def _interval(cell: str) -> list[float]:
    return [float(x) for x in cell.split(" [")[1].rstrip("]").split(", ")]


@pytest.mark.slow
def test_a_study_runs_shares_its_cells_and_results_md_matches_its_runs(tiny_model, tiny_data, tmp_path,
                                                                     capsys) -> None:
    keys = dict(parse_override(o) for o in tiny_overrides(tiny_model, tiny_data, tmp_path / "unused")
                if not o.startswith(("name=", "runs_dir=")))
    keys |= {"seed": [0, 1], "judge.judges": ["keywords"], "judge.primary": "keywords", "train.max_steps": 2}
    results = tmp_path / "RESULTS.md"
    p = _write(tmp_path, {"name": "mini", "runs_dir": str(tmp_path / "runs"), "results": str(results),
                          "experiments": [{"name": "a", "question": "A?", "set": keys},
                                          {"name": "b", "question": "B?",
                                           "set": keys | {"build.gamma": [0.0, 0.5, 1.0],
                                                          "evaluate.attacks": ["prefill"]}}]})
    assert main(["study", str(p), "--only", "a", "--no-progress"]) == 0
    assert "1 of 2 experiments have finished" in results.read_text() and "**Not run yet**" in results.read_text()
    assert main(["study", str(p), "--no-progress"]) == 0
    runs = tmp_path / "runs"
    for key, shared in (("s0-none-g0.00", True), ("s1-builtin-g1.00", True), ("s0-builtin-g0.50", False)):
        [tdir] = (runs / "b" / "train").glob(f"*-{key}")
        m = json.loads((tdir / "manifest.json").read_text())
        assert ("copied_from" in m) is shared, key
        if shared:
            assert m["copied_from"] == str(runs / "a" / "train" / tdir.name)

    text = results.read_text()
    assert "2 of 2 experiments have finished" in text
    for exp in ("a", "b"):
        m = json.loads((runs / exp / "metrics.json").read_text())
        tbr = "tbr" if exp == "a" else "tbr-g1.00"
        for cell in ("baseline", tbr):
            row = _row(text, exp, cell, 0)
            for col, pl in ((1, "safe"), (2, "unsafe")):
                [agg] = [x for x in m["across_seeds"] if x["name"] == cell and x["prompt_label"] == pl]
                assert _num(row[col]) == pytest.approx(agg["mean"], abs=5e-4)
                if agg["ci"][0] is not None:
                    assert _interval(row[col]) == pytest.approx(agg["ci"], abs=5e-4)
        row = _row(text, exp, tbr, 1)
        for col, pl in ((1, "safe"), (2, "unsafe")):
            [pp] = [x for x in m["paired_across_seeds"] if x["a"] == "baseline" and x["b"] == tbr
                    and x["prompt_label"] == pl]
            assert _num(row[col]) == pytest.approx(pp["diff"], abs=5e-4)
        assert row[-1] in ("yes", "no", "–")
        assert f"`tbr study {p.as_posix()} --only {exp}`" in text
        # the run's own report leads with the same paired differences and a verdict in words
        report = (runs / exp / "report.md").read_text()
        claim = report.split("## The claim on this run\n", 1)[1].split("\n## ", 1)[0]
        assert report.index("## The claim on this run") < report.index("| model |")
        assert _row(f"## x\n{claim}", "x", tbr, 0)[1:3] == row[1:3]
        assert f"**{tbr} {'met' if row[-1] == 'yes' else 'did not meet'} the bar on this run**" in claim
    # b ran under attack too (its cells still copied from a: attacks never retrain)
    mb = json.loads((runs / "b" / "metrics.json").read_text())
    [pp] = [x for x in mb["attacks"]["paired"] if x["attack"] == "none" and x["prompt_label"] == "unsafe"
            and x["b"] == "tbr-g1.00-s1"]
    line = next(x for x in text.splitlines() if x.startswith("| none | baseline-s1 vs tbr-g1.00-s1 |"))
    assert _num(line.split(" | ")[3]) == pytest.approx(pp["diff"], abs=5e-4)
    assert "| prefill | baseline-s1 vs tbr-g1.00-s1 |" in text
    capsys.readouterr()
    assert main(["compare", "--study", str(p), "--check"]) == 0
    results.write_text(text.replace("0.", "1.", 1))
    assert main(["compare", "--study", str(p), "--check"]) == 1
    assert main(["compare", "--study", str(p)]) == 0 and results.read_text() == text  # regenerated exactly


def test_bad_yaml_in_a_study_names_its_line(tmp_path: Path) -> None:
    p = tmp_path / "study.yaml"
    p.write_text("experiments:\n  - name: a\n    set: {seed: [0,\n", encoding="utf-8")
    with pytest.raises(TbrError, match=r"study.yaml:\d+: not valid YAML"):
        load_study(p)


def test_the_committed_results_md_is_the_generated_one_for_the_shipped_study() -> None:
    """RESULTS.md at the repo root is what `tbr compare --study configs/study.yaml` writes: the
    header names that command, and there is one section per experiment, in the study's order,
    each with its reproduce command and, where it has run, its metrics.json digest."""
    text = (REPO / "RESULTS.md").read_text(encoding="utf-8")
    s = load_study(REPO / "configs" / "study.yaml")
    assert text.startswith("# RESULTS\n\nGenerated by `tbr compare --study configs/study.yaml`")
    heads = re.findall(r"^## (.+)$", text, flags=re.M)
    assert heads == ["Summary", *[e.name for e in s.experiments]]
    for e in s.experiments:
        body = text.split(f"\n## {e.name}\n", 1)[1].split("\n## ", 1)[0]
        assert f"`tbr study configs/study.yaml --only {e.name}`" in body
        assert ("**Not run yet**" in body) != bool(re.search(r"metrics.json sha256 `[0-9a-f]{16}`", body))
