"""`tbr review`: the stratified sample, the label store, imported labels, the terminal loop, the
numbers the review gives, and the review section of a real tiny run's report."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import tiny_overrides
from tbr.errors import TbrError
from tbr.review import sample as S
from tbr.review.estimate import Stratum, stratified_rate
from tbr.review.rows import input_rows, read_import
from tbr.review.server import make_server
from tbr.review.store import append_label, final_labels, read_labels, read_sample
from tbr.review.summary import summarize, weighted_scores
from tbr.review.terminal import label_loop
from test_review_server import Page, browser_bins, driver  # noqa: F401  (fixtures)


def _rows(n_safe: int = 30, n_unsafe: int = 30) -> list[dict]:
    """Two models; the primary judge `p` refuses every third answer; judge `k` disagrees on every fifth."""
    out = []
    for model in ("baseline", "tbr"):
        for i in range(n_safe + n_unsafe):
            pl = "safe" if i < n_safe else "unsafe"
            p = "full_refusal" if i % 3 == 0 else "full_compliance"
            k = ("full_compliance" if p == "full_refusal" else "full_refusal") if i % 5 == 0 else p
            out.append({"model": model, "mode": "plain", "id": f"q{i}", "prompt": f"prompt {i}",
                        "response": f"{model} answer {i}", "reflection": None, "answer": f"{model} answer {i}",
                        "prompt_label": pl, "verdicts": {"p": p, "k": k}})
    return out


def test_allocation() -> None:
    assert S.allocate(20, 4, 80) == (4, 16)     # every disagreement, the rest from agreement
    assert S.allocate(20, 30, 30) == (10, 10)   # at most half to disagreements when both are plenty
    assert S.allocate(20, 30, 3) == (17, 3)     # agreements run out: disagreements take the rest
    assert S.allocate(20, 0, 7) == (0, 7)       # capped by the cell's size
    assert S.allocate(5, 0, 0) == (0, 0)


def test_draw_is_stratified_seeded_and_opaque() -> None:
    rows = _rows()
    picked, strata = S.draw(rows, "p", per_stratum=6, seed=3)
    again, _ = S.draw(rows, "p", per_stratum=6, seed=3)
    other, _ = S.draw(rows, "p", per_stratum=6, seed=4)
    assert [r["rid"] for r in picked] == [r["rid"] for r in again]
    assert {r["rid"] for r in picked} != {r["rid"] for r in other}
    # every stratum's N is the number of rows it holds, and its n the number drawn from it
    for s in strata:
        members = [r for r in rows if r["model"] == s["model"] and r["prompt_label"] == s["prompt_label"]
                   and r["verdicts"]["p"] == s["verdict"] and S.judges_disagree(r["verdicts"]) == s["disagree"]]
        assert s["N"] == len(members)
        assert s["n"] == sum(r["stratum"] == s["stratum"] for r in picked)
    assert sum(s["N"] for s in strata) == len(rows)
    # (model, prompt label, verdict) cells: 2 x 2 x 2 = 8, each split into agree/disagree
    assert len({(s["model"], s["prompt_label"], s["verdict"]) for s in strata}) == 8
    # disagreements are oversampled: their inclusion rate is above the agreeing rows'
    rate = {d: sum(s["n"] for s in strata if s["disagree"] == d) / sum(s["N"] for s in strata if s["disagree"] == d)
            for d in (True, False)}
    assert rate[True] > rate[False]
    # a reviewer cannot tell model or stratum from the id or the order
    assert all(len(r["rid"]) == 12 and r["model"] not in r["rid"] for r in picked)
    assert [r["model"] for r in picked[:6]] != ["baseline"] * 6


def test_store_latest_label_wins_and_torn_line_is_dropped(tmp_path: Path) -> None:
    append_label(tmp_path, "r1", "full_refusal", "ann")
    append_label(tmp_path, "r1", "partial_refusal", "ann", note="changed my mind")
    append_label(tmp_path, "r1", "partial_refusal", "bob")
    append_label(tmp_path, "r2", "full_refusal", "ann")
    append_label(tmp_path, "r2", "full_compliance", "bob")
    with open(tmp_path / "labels.jsonl", "a", encoding="utf-8") as f:
        f.write('{"rid": "r3", "label": "full_re')  # a kill in the middle of a write
    labels = read_labels(tmp_path)
    assert len(labels) == 5
    final, open_ = final_labels(labels)
    assert final == {"r1": "partial_refusal"} and open_ == ["r2"]
    append_label(tmp_path, "r2", "full_refusal", "carol", adjudicated=True)
    final, open_ = final_labels(read_labels(tmp_path))
    assert final == {"r1": "partial_refusal", "r2": "full_refusal"} and open_ == []
    with pytest.raises(TbrError, match="not one of"):
        append_label(tmp_path, "r1", "refusal", "ann")
    with pytest.raises(TbrError, match="kept for adjudications"):
        append_label(tmp_path, "r1", "full_refusal", "adjudicator")


def test_weighted_scores_by_hand() -> None:
    gold = ["full_refusal", "full_compliance", "partial_refusal", "full_compliance"]
    pred = ["full_refusal", "full_refusal", "full_refusal", "uncertain"]
    w = [3.0, 1.0, 1.0, 5.0]
    s = weighted_scores(gold, pred, w)
    assert s["three_class"]["accuracy"] == pytest.approx(3 / 10)
    assert s["binary"]["accuracy"] == pytest.approx(4 / 10)   # row 3 is right in the binary sense
    # binary kappa over the decided rows (weights 3, 1, 1): all predictions "refusal" -> p_e = p_o -> 0
    assert s["binary"]["kappa"] == pytest.approx(0.0)


def test_summary_weights_and_census(tmp_path: Path) -> None:
    rows = _rows(12, 12)
    picked, strata = S.draw(rows, "p", per_stratum=100, seed=0)   # a census: every row drawn
    meta = {"primary_judge": "p", "seed": 0, "per_stratum": 100, "strata": strata}
    truth = {}
    for r in picked:   # the truth: judge p is wrong on ids divisible by 4
        i = int(r["id"][1:])
        right = r["verdicts"]["p"]
        truth[r["rid"]] = right if i % 4 else ("full_compliance" if right != "full_compliance" else "full_refusal")
        append_label(tmp_path, r["rid"], truth[r["rid"]], "ann")
    summ = summarize(meta, picked, read_labels(tmp_path), pairs=[("baseline", "tbr")])
    for model in ("baseline", "tbr"):
        for pl in ("safe", "unsafe"):
            mine = [r for r in picked if r["model"] == model and r["prompt_label"] == pl]
            want = sum(truth[r["rid"]] == "full_compliance" for r in mine) / len(mine)
            c = summ["corrected"][model][pl]
            assert c["estimate"] == pytest.approx(want) and c["ci"][0] == c["ci"][1]
            assert c["raw"] == pytest.approx(sum(r["verdicts"]["p"] == "full_compliance" for r in mine) / len(mine))
        acc = summ["judges"]["p"][model]["binary"]["accuracy"]
        mine = [r for r in picked if r["model"] == model]
        assert acc == pytest.approx(sum(int(r["id"][1:]) % 4 != 0 for r in mine) / len(mine))
    d = summ["differences"][0]
    assert (d["a"], d["b"]) == ("baseline", "tbr") and d["diff"] == pytest.approx(0.0) and d["se"] == 0.0


def test_summary_matches_the_estimator_on_a_partial_review(tmp_path: Path) -> None:
    rows = _rows()
    picked, strata = S.draw(rows, "p", per_stratum=5, seed=1)
    meta = {"primary_judge": "p", "seed": 1, "per_stratum": 5, "strata": strata}
    for r in picked:
        append_label(tmp_path, r["rid"], "full_compliance" if r["verdicts"]["k"] == "full_compliance" else
                     "full_refusal", "ann")
    summ = summarize(meta, picked, read_labels(tmp_path))
    ss = [s for s in strata if s["model"] == "tbr" and s["prompt_label"] == "unsafe"]
    want = stratified_rate([Stratum(s["N"], s["n"], sum(r["stratum"] == s["stratum"] and r["verdicts"]["k"] ==
                                                           "full_compliance" for r in picked)) for s in ss])
    got = summ["corrected"]["tbr"]["unsafe"]
    assert got["estimate"] == pytest.approx(want["estimate"]) and got["ci"] == pytest.approx(want["ci"])
    # `k` is the review here, so it scores 1.0 on every model, whatever the weights
    assert all(s["binary"]["accuracy"] == pytest.approx(1.0) for s in summ["judges"]["k"].values())


def _judged_file(tmp_path: Path) -> Path:
    p = tmp_path / "judged.jsonl"
    rows = [{"id": r["id"], "model": r["model"], "prompt": r["prompt"], "response": r["response"],
             "label": r["verdicts"]["p"], "judge": "p", "input_label": r["prompt_label"]} for r in _rows(6, 6)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


def test_input_rows_and_bad_rows(tmp_path: Path) -> None:
    rows, primary = input_rows(_judged_file(tmp_path))
    assert primary == "p" and len(rows) == 24 and rows[0]["prompt_label"] == "safe"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "prompt": "a", "response": "b", "label": "full_refusal", "prompt_label": "maybe"}\n')
    with pytest.raises(TbrError, match=r"bad.jsonl:1: field 'prompt_label': expected 'safe' or 'unsafe'"):
        input_rows(bad)


def test_import_checks_every_row_first(tmp_path: Path) -> None:
    csv_ = tmp_path / "labels.csv"
    csv_.write_text("id,label,reviewer\nr1,full_refusal,ann\nr2,refused,ann\n", encoding="utf-8")
    with pytest.raises(TbrError, match=r"labels.csv:3: field 'label': expected one of full_compliance"):
        read_import(csv_, ["r1", "r2"])
    csv_.write_text("id,label\nr1,full_refusal\nzz,full_refusal\n", encoding="utf-8")
    with pytest.raises(TbrError, match=r"labels.csv:3: field 'id': id 'zz' is not in this review sample"):
        read_import(csv_, ["r1", "r2"])


def test_terminal_loop_labels_skips_goes_back_and_resumes(tmp_path: Path) -> None:
    rows = [{"rid": f"r{i}", "prompt": f"p{i}", "response": f"a{i}", "reflection": None, "answer": f"a{i}"}
            for i in range(4)]
    keys = iter(["1", "s", "b", "n", "odd one", "3", "q"])
    shown: list[str] = []
    assert label_loop(tmp_path, rows, "ann", ask=lambda _: next(keys), out=shown.append) == 2
    got = [(r["rid"], r["label"], r["note"]) for r in read_labels(tmp_path)]
    assert got == [("r0", "full_compliance", ""), ("r1", "partial_refusal", "odd one")]
    assert not any("full_refusal" in s and "verdict" in s for s in shown)
    keys = iter(["2", "q"])   # reopening resumes at the first row not labelled: r2
    label_loop(tmp_path, rows, "ann", ask=lambda _: next(keys), out=shown.append)
    assert read_labels(tmp_path)[-1]["rid"] == "r2"


def _tbr(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tbr", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_on_a_judged_file(tmp_path: Path) -> None:
    f = _judged_file(tmp_path)
    r = _tbr("review", "--input", str(f), "--n", "3", "--export", str(tmp_path / "blind.csv"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    blind = (tmp_path / "blind.csv").read_text()
    assert "full_refusal" not in blind and "baseline" not in blind.split("\n")[0]
    meta, picked = read_sample(tmp_path / "review")
    lab = tmp_path / "mine.jsonl"
    lab.write_text("".join(json.dumps({"id": r["rid"], "label": "full_refusal", "reviewer": "ann"}) + "\n"
                           for r in picked), encoding="utf-8")
    r = _tbr("review", "--input", str(f), "--n", "3", "--import", str(lab), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summ = json.loads((tmp_path / "review" / "summary.json").read_text())
    assert summ["reviewed"] == len(picked) and summ["corrected"]["tbr"]["safe"]["estimate"] == 0.0
    assert "Human review" in (tmp_path / "review" / "summary.md").read_text()
    # a second reviewer disagrees on the first two rows; adjudication sees only those, with both labels
    lab_b = tmp_path / "bob.csv"
    lab_b.write_text("id,label,reviewer\n" + "".join(
        f"{r['rid']},{'full_compliance' if i < 2 else 'full_refusal'},bob\n" for i, r in enumerate(picked)))
    assert _tbr("review", "--input", str(f), "--n", "3", "--import", str(lab_b), cwd=tmp_path).returncode == 0
    summ = json.loads((tmp_path / "review" / "summary.json").read_text())
    assert (summ["disagreements"], summ["unresolved"], summ["reviewed"]) == (2, 2, len(picked) - 2)
    pair = summ["agreement"]["pairs"][0]
    assert (pair["a"], pair["b"], pair["n"]) == ("ann", "bob", len(picked))
    assert pair["agreement"] == pytest.approx((len(picked) - 2) / len(picked))
    r = _tbr("review", "--input", str(f), "--n", "3", "--adjudicate", "--export", str(tmp_path / "adj.jsonl"),
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    adj = [json.loads(x) for x in (tmp_path / "adj.jsonl").read_text().splitlines()]
    assert [a["id"] for a in adj] == [picked[0]["rid"], picked[1]["rid"]]
    assert adj[0]["reviewers"] == "ann: full_refusal; bob: full_compliance"
    (tmp_path / "adj.jsonl").write_text("".join(json.dumps({**a, "label": "full_compliance"}) + "\n" for a in adj))
    r = _tbr("review", "--input", str(f), "--n", "3", "--adjudicate", "--import", str(tmp_path / "adj.jsonl"),
             "--reviewer", "carol", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert all(x["adjudicated"] for x in read_labels(tmp_path / "review")[-2:])
    summ = json.loads((tmp_path / "review" / "summary.json").read_text())
    assert (summ["unresolved"], summ["reviewed"]) == (0, len(picked))
    # another --n under existing labels would silently mismatch them: refused
    r = _tbr("review", "--input", str(f), "--n", "4", cwd=tmp_path)
    assert r.returncode == 2 and "already has labels" in r.stderr


@pytest.mark.slow
def test_review_of_a_tiny_run_in_the_browser_reaches_metrics_and_reports(
        tiny_model: Path, tiny_data: dict[str, Path], tmp_path: Path, driver: Any) -> None:
    """The whole path a user takes: run, draw, label on the served page by keyboard (with a
    reload half-way), then `tbr review` writes the numbers into metrics.json and the reports."""
    from tbr.config import load_config
    from tbr.pipeline import run
    root = run(load_config(None, tiny_overrides(tiny_model, tiny_data, tmp_path / "runs", name="rev")
                           + ["judge.judges=[keywords,xstest-prefix]", "judge.primary=keywords"]), progress=False)
    r = _tbr("review", str(root), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    meta, picked = read_sample(root / "review")
    assert len(picked) == meta["rows"] == 3 * 8   # untouched, baseline, tbr x 8 prompts: every stratum < 20
    srv = make_server(root / "review", "ann")
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        page = Page(driver, srv.url)
        for i, p in enumerate(picked):   # "2" = full refusal for every row
            if i == 12:
                driver.refresh()
                page.ready()
                assert page.text("rid") == p["rid"], "a reload resumes at the first row without a label"
            assert page.text("rid") == p["rid"]
            page.press("2")
            page.wait.until(lambda d, i=i: page.text("progress").startswith(f"{i + 1} of 24"))
        page.wait.until(lambda d: page.el("done").is_displayed())
    finally:
        srv.shutdown()
        srv.server_close()
    assert [(x["rid"], x["label"]) for x in read_labels(root / "review")] == [(p["rid"], "full_refusal") for p in picked]
    r = _tbr("review", str(root), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    m = json.loads((root / "metrics.json").read_text())
    assert m["review"]["reviewed"] == 24
    c = m["review"]["corrected"]["baseline"]["unsafe"]
    assert c["estimate"] == 0.0 and c["ci"] == [0.0, 0.0]   # a census of all-refusal labels
    assert json.loads((root / "evaluate" / "metrics.json").read_text()).get("review") is None
    md = (root / "report.md").read_text()
    assert "## Human review of this run" in md and "review-corrected CR" in md
    assert "| baseline | unsafe |" in md
    html = (root / "report.html").read_text()
    assert 'id="review"' in html and "Human review" in html
