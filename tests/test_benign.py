"""Benign look-alike rows (build.benign): which general rows they replace, how cells and labels
take the axis, and that cells without them keep the fingerprints they had before the option."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tbr.config import load_config
from tbr.data.sources import benign_rows, builtin_rows
from tbr.errors import TbrError
from tbr.grid import build_config, cell_labels, cells
from tbr.stages.build import mix, replace_benign


def _general(n: int) -> list[dict]:
    return [{"id": f"g{i:02d}", "prompt": f"p{i}", "response": f"r{i}", "category": "x", "reflection": None,
             "target": f"r{i}"} for i in range(n)]


def _benign(n: int) -> list[dict]:
    return [{"id": f"b{i:02d}", "prompt": f"bp{i}", "reflection": f"This query asks for {i}, which is fine.",
             "response": f"answer {i}", "type": "homonyms"} for i in range(n)]


def test_replace_benign_exact_nested_and_capped() -> None:
    rows, c = replace_benign(_general(10), _benign(8), 0.25, seed=0)
    assert (c["benign"], c["benign_wanted"], c["benign_unavailable"]) == (3, 3, 0)   # 0.25 * 10 = 2.5 -> 3
    assert len(rows) == 10 and [r["kind"] for r in rows[-3:]] == ["benign"] * 3
    b = rows[-1]
    assert b["target"] == b["reflection"] + " " + b["response"]   # reflection, then the helpful answer
    kept = [r["id"] for r in rows if r.get("kind") != "benign"]
    assert kept == sorted(kept)                                    # kept general rows stay in input order
    more, _ = replace_benign(_general(10), _benign(8), 0.5, seed=0)
    # a larger share replaces a superset and brings a superset
    assert set(kept) >= {r["id"] for r in more if r.get("kind") != "benign"}
    assert {r["id"] for r in rows if r.get("kind") == "benign"} <= {r["id"] for r in more if r.get("kind") == "benign"}
    capped, c = replace_benign(_general(10), _benign(2), 1.0, seed=0)
    assert (c["benign"], c["benign_wanted"], c["benign_unavailable"]) == (2, 10, 8) and len(capped) == 10
    again, _ = replace_benign(_general(10), _benign(8), 0.25, seed=0)
    other, _ = replace_benign(_general(10), _benign(8), 0.25, seed=1)
    assert again == rows and other != rows


def test_mix_without_benign_is_unchanged() -> None:
    safety = [{"id": "s0", "prompt": "bad", "response": "No.", "category": "weapons"}]
    a, ca = mix(_general(4), safety, {"s0": "This asks for harm."}, 1.0, 0)
    b, cb = mix(_general(4), safety, {"s0": "This asks for harm."}, 1.0, 0, benign=_benign(3), benign_share=0.0)
    assert a == b and ca == cb and "benign" not in ca
    c, cc = mix(_general(4), safety, {"s0": "This asks for harm."}, 1.0, 0, benign=_benign(3), benign_share=0.5)
    assert (cc["general"], cc["benign"], cc["safety"]) == (2, 2, 1) and len(c) == 5


def test_cells_and_labels_take_the_axis() -> None:
    cfg = load_config(None, ["build.gamma=[0,1]", "build.benign=[0,0.25]"])
    grid = cells(cfg)
    # the baseline never gets benign reflections: it is the plain safety SFT
    assert [(c.gamma, c.benign) for c in grid] == [(0.0, 0.0), (1.0, 0.0), (1.0, 0.25)]
    assert list(cell_labels(cfg, grid).values()) == ["baseline", "tbr", "tbr+benign"]
    assert grid[2].key.endswith("-g1.00-b0.25") and grid[1].key.endswith("-g1.00")
    cfg3 = load_config(None, ["build.gamma=[0,1]", "build.benign=[0,0.25,0.5]"])
    assert list(cell_labels(cfg3).values())[-1] == "tbr+benign0.50"


def test_cells_without_benign_keep_their_build_config() -> None:
    cfg = load_config(None, ["build.gamma=[0,1]"])
    for c in cells(cfg):
        bc = build_config(cfg, c)
        assert "benign" not in bc and "benign_source" not in bc and bc["gamma"] == c.gamma
    cfgb = load_config(None, ["build.gamma=[1]", "build.benign=[0.5]"])
    assert build_config(cfgb, cells(cfgb)[0])["benign"] == 0.5


def test_builtin_set_and_a_bad_user_file(tmp_path: Path) -> None:
    rows = builtin_rows("benign-reflections")
    assert len(rows) >= 150 and all(r["reflection"].startswith("This query asks for") for r in rows)
    assert benign_rows("builtin") == rows
    bad = tmp_path / "b.jsonl"
    bad.write_text(json.dumps({"id": "1", "prompt": "p", "response": "r"}) + "\n")
    with pytest.raises(TbrError, match=r"b.jsonl:1: field 'reflection': missing"):
        benign_rows(str(bad))
    with pytest.raises(TbrError, match="expected 'builtin' or a JSONL"):
        benign_rows(str(tmp_path / "nope.jsonl"))


def test_build_stage_writes_benign_rows_for_the_tbr_cell_only(tiny_model: Path, tiny_data: dict[str, Path],
                                                              tmp_path: Path) -> None:
    from conftest import tiny_overrides
    from tbr.io import read_jsonl
    from tbr.pipeline import run
    cfg = load_config(None, tiny_overrides(tiny_model, tiny_data, tmp_path, name="benign")
                      + ["build.gamma=[0,1]", "build.benign=[0,0.5]"])
    root = run(cfg, progress=False, until="build")
    folders = sorted(p.name for p in (root / "build").iterdir() if p.is_dir())
    assert len(folders) == 3 and sum(f.endswith("-b0.50") for f in folders) == 1
    for f in folders:
        rows = read_jsonl(root / "build" / f / "train.jsonl")
        benign = [r for r in rows if r.get("kind") == "benign"]
        assert len(rows) == 12 + 6   # same size in every cell: benign rows replace general ones
        assert len(benign) == (6 if f.endswith("-b0.50") else 0)
        for r in benign:
            assert r["completion_text"].startswith(r["reflection"])   # trained: reflection, then the answer


def test_seed_aggregation_keeps_benign_cells_apart() -> None:
    from tbr.seeds import aggregate_seeds

    def rate(x: float) -> dict:
        return {"plain": {"p": {"all": {"safe": {"overall": {"compliance": x}}}}}}
    cells = {f"tbr-s{s}": {"model": "m", "seed": s, "source": "internal", "gamma": 1.0} for s in (0, 1)}
    cells |= {f"tbr+benign-s{s}": {"model": "m", "seed": s, "source": "internal", "gamma": 1.0, "benign": 0.25}
              for s in (0, 1)}
    models = {"tbr-s0": rate(0.4), "tbr-s1": rate(0.6), "tbr+benign-s0": rate(0.8), "tbr+benign-s1": rate(1.0)}
    rows = aggregate_seeds({"cells": cells, "primary_judge": "p", "modes": ["plain"], "models": models})
    safe = {r["name"]: r for r in rows if r["prompt_label"] == "safe"}
    assert safe["tbr"]["mean"] == 0.5 and "benign" not in safe["tbr"]
    assert safe["tbr+benign"]["mean"] == 0.9 and safe["tbr+benign"]["benign"] == 0.25


@pytest.mark.slow
def test_a_benign_grid_runs_to_the_report(tiny_model: Path, tiny_data: dict[str, Path], tmp_path: Path) -> None:
    from conftest import tiny_overrides
    from tbr.pipeline import run
    cfg = load_config(None, tiny_overrides(tiny_model, tiny_data, tmp_path, name="benign-grid")
                      + ["build.gamma=[0,1]", "build.benign=[0,0.5]", "judge.judges=[keywords]",
                         "judge.primary=keywords"])
    root = run(cfg, progress=False)
    m = json.loads((root / "metrics.json").read_text())
    assert m["cells"]["tbr+benign"]["benign"] == 0.5 and "benign" not in m["cells"]["tbr"]
    pairs = {(p["a"], p["b"]) for p in m["paired"]}
    assert {("baseline", "tbr"), ("baseline", "tbr+benign")} <= pairs
    assert "tbr+benign" in (root / "report.md").read_text() and (root / "report.html").is_file()
