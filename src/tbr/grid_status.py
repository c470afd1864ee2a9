"""Which grid cells of an experiment are already done: a table printed before `tbr run` starts.

A stage counts as *done* here when its folder holds a manifest.json whose recorded config equals
the stage's config section as the current experiment would write it and every stage it feeds on
(data, then reflect -> build -> train -> generate -> judge) is done too; *stale* when a manifest
is there but it will rerun anyway. Only the manifests' recorded configs are compared: other
upstream changes (edited input files, new package versions in a fingerprint) are caught by the
pipeline's fingerprints at run time, so this table is a forecast, never a decision: nothing here
skips or deletes anything.
"""
from __future__ import annotations

import sys
from typing import Any, TextIO

from tbr.config import ExperimentConfig, to_dict
from tbr.grid import build_config, cell_labels, reflect_config, reflect_folder, train_config, untouched_labels
from tbr.labels import folder_name
from tbr.runs import read_manifest

CELL_STAGES = ("reflect", "build", "train", "generate", "judge")
DONE, STALE, TODO = "done", "stale", "todo"
_MARK = {DONE: "✓", STALE: "~", TODO: "·"}


def _state(stage_dir: Any, config: Any) -> str:
    m = read_manifest(stage_dir)
    if not m:
        return TODO
    return DONE if m.get("config") == config else STALE


def _chain(states: dict[str, str], upstream_ok: bool = True) -> dict[str, str]:
    """Stages feed each other in order: after one that will (re)run, a finished one is stale too."""
    ok = upstream_ok
    out = {}
    for k, v in states.items():
        out[k] = STALE if (v == DONE and not ok) else v
        ok = ok and v == DONE
    return out


def cell_status(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """One dict per grid cell (then one per untouched model when generate.untouched): label,
    key (None for untouched models), model, seed, source, gamma, `stages` (stage -> done | stale
    | todo) and `done` (the stages that are done)."""
    root = cfg.run_dir
    data_ok = _state(root / "data", to_dict(cfg.data)) == DONE
    out: list[dict[str, Any]] = []
    for c, label in cell_labels(cfg).items():
        st = {
            "reflect": _state(root / "reflect" / reflect_folder(c.model, c.source), reflect_config(cfg, c.source)),
            "build": _state(root / "build" / c.key, build_config(cfg, c)),
            "train": _state(root / "train" / c.key, train_config(cfg)),
            "generate": _state(root / "generate" / folder_name(label), to_dict(cfg.generate)),
            "judge": _state(root / "judge" / folder_name(label), to_dict(cfg.judge)),
        }
        st = _chain(st, data_ok)
        out.append({"label": label, "key": c.key, "model": c.model, "seed": c.seed, "source": c.source,
                    "gamma": c.gamma, "stages": st, "done": [s for s in CELL_STAGES if st[s] == DONE]})
    if cfg.generate.untouched:
        for label, mname in untouched_labels(cfg):
            st = {"generate": _state(root / "generate" / folder_name(label), to_dict(cfg.generate)),
                  "judge": _state(root / "judge" / folder_name(label), to_dict(cfg.judge))}
            st = _chain(st, data_ok)
            out.append({"label": label, "key": None, "model": mname, "seed": None, "source": None, "gamma": None,
                        "stages": st, "done": [s for s in CELL_STAGES if st.get(s) == DONE]})
    return out


def run_status(cfg: ExperimentConfig) -> dict[str, str]:
    """The run-wide stages: data, evaluate, attribute and general (when configured)."""
    root = cfg.run_dir
    out = {"data": _state(root / "data", to_dict(cfg.data)), "evaluate": _state(root / "evaluate",
                                                                                  to_dict(cfg.evaluate))}
    if cfg.attribute.enabled:
        out["attribute"] = _state(root / "attribute", to_dict(cfg.attribute))
    if cfg.evaluate.general_tasks:
        out["general"] = _state(root / "general", {"tasks": cfg.evaluate.general_tasks,
                                                   "limit": cfg.evaluate.general_limit})
    return out


def format_status(cfg: ExperimentConfig) -> str:
    rows = cell_status(cfg)
    width = max([len("cell")] + [len(r["label"]) for r in rows])
    head = f"{'cell':<{width}}  " + "  ".join(f"{s:<8}" for s in CELL_STAGES)
    lines = [f"grid status of {cfg.run_dir} ({_MARK[DONE]} done, {_MARK[STALE]} stale: will rerun, "
             f"{_MARK[TODO]} to do)", head]
    for r in rows:
        marks = "  ".join(f"{(_MARK[r['stages'][s]] if s in r['stages'] else ''):<8}" for s in CELL_STAGES)
        lines.append(f"{r['label']:<{width}}  {marks}".rstrip())
    n_done = sum(1 for r in rows if all(v == DONE for v in r["stages"].values()))
    rs = run_status(cfg)
    if n_done < len(rows) or rs["data"] != DONE:   # evaluate and attribute read every cell's outputs
        rs = {k: (STALE if v == DONE and k != "data" else v) for k, v in rs.items()}
    lines.append(f"{n_done}/{len(rows)} fully done; " + ", ".join(f"{k} {_MARK[v]}" for k, v in rs.items()))
    return "\n".join(lines)


def print_status(cfg: ExperimentConfig, file: TextIO | None = None) -> None:
    """Print the table (to stderr by default, beside the pipeline's log lines)."""
    print(format_status(cfg), file=file or sys.stderr, flush=True)
