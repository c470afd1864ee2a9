"""A grid with two base models and two seeds: labels, the pairing of baseline and TBR cells by
their recorded model and seed, untouched models compared with their own fine-tunes only, and
the across-seed aggregation, all asserted exactly."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import tiny_overrides
from tbr.config import load_config
from tbr.pipeline import run
from tbr.seeds import seed_interval

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def grid(tiny_model, tiny_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("grid")
    a, b = d / "a" / "model", d / "b" / "model"
    shutil.copytree(tiny_model, a)
    shutil.copytree(tiny_model, b)
    models = json.dumps([{"path": str(a), "label": "alpha"}, {"path": str(b), "label": "beta"}])
    cfg = load_config(None, tiny_overrides(tiny_model, tiny_data, d / "runs") + [
        f"models={models}", "seed=[0, 1]", "build.gamma=[0.0, 1.0]", "judge.judges=[keywords]",
        "judge.primary=keywords", "train.max_steps=2"])
    root = run(cfg, progress=False)
    return root, json.loads((root / "metrics.json").read_text()), str(a), str(b)


def test_labels(grid):
    _, m, a, b = grid
    want = {f"{x}:{c}-s{s}" for x in ("alpha", "beta") for c in ("baseline", "tbr") for s in (0, 1)}
    assert set(m["cells"]) == want
    assert set(m["models"]) == want | {"alpha:untouched", "beta:untouched"}
    for lab, c in m["cells"].items():
        assert c["model"] == (a if lab.startswith("alpha") else b)
        assert c["seed"] == int(lab[-1]) and c["gamma"] == (0.0 if ":baseline" in lab else 1.0)


def test_pairing_by_model_and_seed(grid):
    _, m, _, _ = grid
    pairs = {(p["a"], p["b"]) for p in m["paired"] if p["prompt_label"] == "safe"}
    want = set()
    for x in ("alpha", "beta"):
        for s in (0, 1):
            want.add((f"{x}:baseline-s{s}", f"{x}:tbr-s{s}"))   # never across models or seeds
            for c in ("baseline", "tbr"):
                want.add((f"{x}:untouched", f"{x}:{c}-s{s}"))  # untouched vs its own fine-tunes only
    assert pairs == want
    assert len(m["paired"]) == 2 * len(want)


def test_across_seed_aggregation_by_hand(grid):
    root, m, a, _ = grid
    agg = {(r["model"], r["gamma"], r["prompt_label"]): r for r in m["across_seeds"]}
    assert len(m["across_seeds"]) == 2 * 2 * 2  # models x gamma x prompt label (one mode)
    for x, path in (("alpha", a),):
        for g, c in ((0.0, "baseline"), (1.0, "tbr")):
            for pl in ("safe", "unsafe"):
                cr = [m["models"][f"{x}:{c}-s{s}"]["plain"]["keywords"]["all"][pl]["overall"]["compliance"]
                      for s in (0, 1)]
                r = agg[(path, g, pl)]
                assert r["seeds"] == 2 and r["per_seed"] == {"0": cr[0], "1": cr[1]}
                assert r["mean"] == pytest.approx((cr[0] + cr[1]) / 2) and (r["min"], r["max"]) == (min(cr), max(cr))
    report = (root / "report.md").read_text()
    r = agg[(a, 1.0, "safe")]
    assert r["name"] == "alpha:tbr"
    ci = seed_interval([r["per_seed"]["0"], r["per_seed"]["1"]])["ci"]
    assert r["ci"] == ci
    assert (f"| alpha:tbr | builtin | 1.00 | safe | 2 | {r['mean']:.3f} [{r['min']:.3f}, {r['max']:.3f}] | "
            f"[{ci[0]:.3f}, {ci[1]:.3f}] |") in report


def test_tbr_minus_baseline_pooled_over_seeds(grid):
    """Per model, one pooled row per prompt label for baseline vs TBR (and untouched vs each
    fine-tune), built from that model's two seeds and nothing else."""
    root, m, _, _ = grid
    pooled = {(p["a"], p["b"], p["prompt_label"]): p for p in m["paired_across_seeds"]}
    for x in ("alpha", "beta"):
        for pl in ("safe", "unsafe"):
            p = pooled[(f"{x}:baseline", f"{x}:tbr", pl)]
            assert p["seed_list"] == [0, 1] and p["pairs"] == [[f"{x}:baseline-s{s}", f"{x}:tbr-s{s}"] for s in (0, 1)]
            per = [q["diff"] for s in (0, 1) for q in m["paired"]
                   if (q["a"], q["b"], q["prompt_label"]) == (f"{x}:baseline-s{s}", f"{x}:tbr-s{s}", pl)]
            assert p["per_seed"] == per and p["diff"] == pytest.approx(sum(per) / 2)
            assert p["ci"][0] <= p["diff"] <= p["ci"][1]
            assert (f"{x}:untouched", f"{x}:tbr", pl) in pooled
    assert len(m["paired_across_seeds"]) == 2 * 3 * 2  # models x (base-tbr, untouched-base, untouched-tbr) x label
    report = (root / "report.md").read_text()
    p = pooled[("alpha:baseline", "alpha:tbr", "safe")]
    assert f"| alpha:baseline | alpha:tbr | safe (n={p['n']}) | 2 |" in report
