"""The data stage: the training sets (general and safety) and the evaluation suites, loaded
once per run, checked, sampled as configured and written as JSONL; every later stage reads
these files, never the sources."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tbr.config import to_dict
from tbr.data import sources  # sources.BUILTIN_DIR read at call time: tests point it elsewhere
from tbr.data.sources import load_training
from tbr.io import atomic_write_json, file_sha256, read_jsonl, write_jsonl
from tbr.runs import fingerprint
from tbr.stages.context import Context
from tbr.stages.runner import log, run_stage
from tbr.suites import load_suite_sampled

NAME = "data"
FILES = ["general.jsonl", "safety.jsonl", "eval.jsonl", "sampling.json"]


def builtin_version() -> str:
    """Hash of the shipped data files, so editing a built-in set invalidates cached stages."""
    return fingerprint(sorted((p.name, file_sha256(p)) for p in sources.BUILTIN_DIR.glob("*.jsonl")))


def load(out: Path, d: Any, seed: int) -> dict[str, Any]:
    gen = load_training("general", d.general.source, d.general.limit, seed, d.general.columns)
    saf = load_training("safety", d.safety.source, d.safety.limit, seed, d.safety.columns)
    ev: list[dict[str, Any]] = []
    sampling = []
    for s in d.eval:
        rows, info = load_suite_sampled(s, d.eval_limit, seed)
        ev.extend(rows)
        sampling.append(info)
    write_jsonl(out / "general.jsonl", gen)
    write_jsonl(out / "safety.jsonl", saf)
    write_jsonl(out / "eval.jsonl", ev)
    atomic_write_json(out / "sampling.json", sampling)
    return {"general": len(gen), "safety": len(saf), "eval": len(ev),
            "eval_safe": sum(r["label"] == "safe" for r in ev),
            "eval_unsafe": sum(r["label"] == "unsafe" for r in ev)}


def run(ctx: Context) -> None:
    d = ctx.cfg.data
    out = ctx.root / NAME
    ctx.data_fp = fingerprint("data", to_dict(d), ctx.seed0, builtin_version())
    # quiet while it runs: it mostly validates input, so a bad input gives one line
    run_stage(out, stage=NAME, label="data", fp=ctx.data_fp, config=to_dict(d), inputs={},
              fn=lambda o: load(o, d, ctx.seed0), outputs=FILES, announce=False)
    ctx.general = read_jsonl(out / "general.jsonl")
    ctx.safety = read_jsonl(out / "safety.jsonl")
    ctx.eval_rows = read_jsonl(out / "eval.jsonl")
    if ctx.until != NAME:  # the grid, announced once its inputs are known to be good
        log(f"{len(ctx.grid)} cell(s): " + ", ".join(ctx.label(c) for c in ctx.grid))
