"""The attack stage (evaluate.attacks): the evaluation prompts wrapped in each named attack.

Nothing happens without attacks. With them, attack/eval.jsonl holds every prompt unwrapped
(attack `none`) and under each attack, and it replaces data/eval.jsonl for generation, judging
and evaluation. Its own stage, not part of data: the data fingerprint feeds every training cell,
and wrapping the evaluation prompts must not retrain anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tbr.attacks import expand, resolve
from tbr.data.sampling import stratified_sample
from tbr.io import read_jsonl, write_jsonl
from tbr.runs import fingerprint
from tbr.stages.context import Context
from tbr.stages.runner import run_stage

NAME = "attack"


def run(ctx: Context) -> None:
    names = resolve(ctx.cfg.evaluate.attacks)
    if not names:
        return
    seed, limit = ctx.seed0, ctx.cfg.evaluate.attack_limit
    ctx.attack_fp = fingerprint("attack", names, seed, ctx.data_fp, *([limit] if limit else []))

    def do_wrap(out: Path) -> dict[str, Any]:
        wrapped = {r["id"] for r in stratified_sample(ctx.eval_rows, limit, key=lambda r: (r["suite"], r["label"], r["type"]),
                                                      seed=seed)}
        rows = expand(ctx.eval_rows, names, seed, only=wrapped)
        write_jsonl(out / "eval.jsonl", rows)
        return {"prompts": len(ctx.eval_rows), "attacks": len(names), "rows": len(rows)}
    run_stage(ctx.root / NAME, stage=NAME, label="attack", fp=ctx.attack_fp,
              config={"attacks": names, "seed": seed, "limit": limit},
              inputs={"data": ctx.data_fp}, fn=do_wrap, outputs=["eval.jsonl"], announce=False)
    ctx.eval_rows = read_jsonl(ctx.root / NAME / "eval.jsonl")
