"""Which stages rerun after a config change: a table of (change, stages that must rerun), run on
the tiny pipeline. Every other stage must be skipped as finished. A fingerprint that misses an
input reruns too little (stale results); one that includes too much reruns everything."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import tiny_overrides
from tbr.config import load_config
from tbr.pipeline import run

pytestmark = pytest.mark.slow

CELLS = ("baseline", "tbr")
ALL = {"data", "reflect [builtin]", "reflect [none]", *(f"build [{c}]" for c in CELLS),
       *(f"train [{c}]" for c in CELLS), *(f"generate [{m}]" for m in ("untouched", *CELLS)),
       *(f"judge [{m}]" for m in ("untouched", *CELLS)), "evaluate"}
CELL_ON = {f"{s} [{c}]" for s in ("train", "generate", "judge") for c in CELLS} | {"evaluate"}

TABLE = [
    ("train.learning_rate=0.001", CELL_ON),
    ("build.separator=' / '", {f"build [{c}]" for c in CELLS} | CELL_ON),
    ("generate.max_new_tokens=5", {f"{s} [{m}]" for s in ("generate", "judge") for m in ("untouched", *CELLS)}
     | {"evaluate"}),
    ("judge.judges=[keywords, xstest-prefix]", {f"judge [{m}]" for m in ("untouched", *CELLS)} | {"evaluate"}),
    ("evaluate.bootstrap=60", {"evaluate"}),
    ("data.general.limit=10", ALL),
]


@pytest.fixture(scope="module")
def base(tiny_model, tiny_data, tmp_path_factory) -> tuple[Path, list[str]]:
    runs = tmp_path_factory.mktemp("inv")
    items = tiny_overrides(tiny_model, tiny_data, runs) + ["judge.judges=[keywords, xstest-prefix, tbr]",
                                                           "judge.primary=keywords"]
    run(load_config(None, items), progress=False)
    return runs / "t", items


def _ran(err: str) -> set[str]:
    out = set()
    for line in err.splitlines():
        if not line.startswith("tbr: "):
            continue
        body = line[5:]
        label, _, state = body.rpartition(": ")
        if state == "running" or (label == "data" and state.startswith("done in")):
            out.add(label)
    return out


@pytest.mark.parametrize("change,reruns", TABLE, ids=[c for c, _ in TABLE])
def test_config_change_reruns_exactly(change, reruns, base, tmp_path, capsys):
    root, items = base
    runs = tmp_path / "runs"
    shutil.copytree(root, runs / "t")
    items = [i if not i.startswith("runs_dir=") else f"runs_dir={runs}" for i in items]
    if change.startswith("judge.judges"):
        items.append("judge.primary=keywords")
    capsys.readouterr()
    run(load_config(None, items + [change]), progress=False)
    err = capsys.readouterr().err
    ran = _ran(err)
    assert ran == reruns, f"reran {sorted(ran - reruns)} too many, {sorted(reruns - ran)} missing\n{err}"
    skipped = {ln[5:].rsplit(": ", 1)[0] for ln in err.splitlines() if ln.endswith("finished earlier, skipped")}
    assert skipped == ALL - reruns, err
