"""The pairs stage (train.method dpo or sft+dpo): preference pairs for TBR-DPO.

A pair is (prompt, chosen, rejected), made from a cell's built training rows:
- a harmful request: chosen = the cell's target (reflection + refusal in a TBR cell, the plain
  refusal in the baseline), rejected = the *untouched* model's own answer to it, kept only when
  the run's primary judge calls that answer a full compliance (an untouched model that already
  refuses gives no compliant answer to push away from, and pushing away from a refusal would
  teach the opposite);
- a benign look-alike (build.benign): chosen = reflection + helpful answer, rejected = a
  refusal, one of REFUSALS chosen by a seeded hash of the row id;
- a general row: no pair (SFT teaches them; DPO's reference keeps the model near it).

The untouched model's answers are generated once per base model (pairs/rejected-<model>/) and
shared by every cell; each cell's pairs are one file (pairs/<cell>/pairs.jsonl). The maths (which
rows, which texts) are pure functions with exact tests.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tbr import generation  # called through the module: tests swap its generator
from tbr.grid import Cell
from tbr.io import read_jsonl, write_jsonl
from tbr.models import load_model
from tbr.runs import fingerprint
from tbr.stages.build import render
from tbr.stages.context import Context
from tbr.stages.judge import make_judge, weights_version
from tbr.stages.runner import run_stage

NAME = "pairs"

# Rejected completions of benign look-alikes: refusals in the styles small chat models use.
# Original text, no topic words, so one fits any prompt.
REFUSALS = (
    "I'm sorry, but I can't help with that request.",
    "I can't assist with that. Is there something else I can help you with?",
    "Sorry, I won't be able to help with this one.",
    "I'm not able to provide that information, as it could be used to cause harm.",
    "As an AI assistant, I can't help with requests like this.",
    "I apologize, but I cannot fulfil this request.",
    "That's not something I can help with. If you have another question, feel free to ask.",
    "I must decline this request, because it may be unsafe.",
)


def refusal_for(row_id: str, seed: int) -> str:
    """A refusal from REFUSALS, fixed by (id, seed): the same whatever the row order."""
    h = hashlib.sha256(f"{seed}|{row_id}".encode()).digest()
    return REFUSALS[int.from_bytes(h[:4], "big") % len(REFUSALS)]


def preference_pairs(rows: Sequence[Mapping[str, Any]], rejected: Mapping[str, Mapping[str, Any]],
                     seed: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Pairs (in row order) and counts. `rejected` maps a safety id to the untouched model's
    answer: {"response": ..., "label": the primary judge's label}."""
    pairs: list[dict[str, Any]] = []
    counts = {"safety_pairs": 0, "benign_pairs": 0, "safety_without_compliant_answer": 0, "general_skipped": 0}
    for r in rows:
        kind = r.get("kind")
        if kind == "safety":
            ans = rejected.get(r["id"])
            if ans is None or ans.get("label") != "full_compliance" or not str(ans.get("response") or "").strip():
                counts["safety_without_compliant_answer"] += 1
                continue
            pairs.append({"id": r["id"], "kind": "safety", "prompt": r["prompt"], "chosen": r["target"],
                          "rejected": str(ans["response"]).strip(), "reflection": r.get("reflection")})
            counts["safety_pairs"] += 1
        elif kind == "benign":
            pairs.append({"id": r["id"], "kind": "benign", "prompt": r["prompt"], "chosen": r["target"],
                          "rejected": refusal_for(r["id"], seed), "reflection": r.get("reflection")})
            counts["benign_pairs"] += 1
        else:
            counts["general_skipped"] += 1
    return pairs, counts


def untouched_answers(out: Path, safety: list[dict[str, Any]], *, model_name: str, cfg: Any, dtype: str,
                      device: str, progress: bool) -> dict[str, Any]:
    """The untouched model's greedy answers to every safety prompt, labelled by the primary
    judge (rejected.jsonl: id, prompt, response, label)."""
    model, tok = load_model(model_name, dtype, device)
    texts = [render(tok, r["prompt"], "", cfg.build.template, cfg.build.system_prompt)[0] for r in safety]
    answers = generation.hf_generate_texts(model, tok, texts, max_new_tokens=cfg.train.dpo.rejected_tokens,
                                batch_size=cfg.generate.batch_size, progress=progress, desc="rejected answers")
    del model
    rows = [{"id": r["id"], "prompt": r["prompt"], "response": a} for r, a in zip(safety, answers)]
    judge = make_judge(cfg.judge.primary, cfg.judge)
    labels = [v.label for v in judge.judge(rows)]
    for r, lab in zip(rows, labels):
        r["label"] = lab
    write_jsonl(out / "rejected.jsonl", rows)
    return {"answers": len(rows), "judge": cfg.judge.primary,
            "full_compliance": sum(1 for x in labels if x == "full_compliance")}


def rejected_dir(root: Path, model: str) -> Path:
    """pairs/rejected-<model>: one base model's untouched answers, shared by its cells."""
    return root / NAME / f"rejected-{model.replace('/', '_')}"


def run(ctx: Context) -> None:
    """Nothing under train.method sft; otherwise the untouched answers per base model, then
    each cell's pairs."""
    cfg = ctx.cfg
    if cfg.train.method == "sft":
        return
    rej_fps: dict[str, str] = {}
    judge_cfg = {"primary": cfg.judge.primary, "model": cfg.judge.model, "api_base": cfg.judge.api_base,
                 "api_model": cfg.judge.api_model}
    for model in dict.fromkeys(c.model for c in ctx.grid):
        rdir = rejected_dir(ctx.root, model)
        rconfig = {"model": model, "max_new_tokens": cfg.train.dpo.rejected_tokens, "template": cfg.build.template,
                   "system_prompt": cfg.build.system_prompt, "judge": judge_cfg}
        rfp = fingerprint("rejected", rconfig, ctx.data_fp, weights_version([cfg.judge.primary]))
        rej_fps[model] = rfp

        def do_answers(out: Path, model: str = model) -> dict[str, Any]:
            return untouched_answers(out, ctx.safety, model_name=model, cfg=cfg, progress=ctx.progress, **ctx.dev)
        run_stage(rdir, stage=NAME, label=f"rejected answers [{model.split('/')[-1]}]", fp=rfp, config=rconfig,
                  inputs={"data": ctx.data_fp}, fn=do_answers, outputs=["rejected.jsonl"])
    for c in ctx.grid:
        pdir = ctx.root / NAME / c.key
        pfp = fingerprint("pairs", c.seed, ctx.build_fps[c], rej_fps[c.model])
        ctx.pairs_fps[c] = pfp

        def do_pairs(out: Path, c: Cell = c) -> dict[str, Any]:
            rows = read_jsonl(ctx.root / "build" / c.key / "train.jsonl")
            rejected = {r["id"]: r for r in read_jsonl(rejected_dir(ctx.root, c.model) / "rejected.jsonl")}
            pairs, counts = preference_pairs(rows, rejected, c.seed)
            write_jsonl(out / "pairs.jsonl", pairs)
            return counts
        run_stage(pdir, stage=NAME, label=f"pairs [{ctx.label(c)}]", fp=pfp, config={"seed": c.seed},
                  inputs={"build": ctx.build_fps[c], "rejected": rej_fps[c.model]}, fn=do_pairs,
                  outputs=["pairs.jsonl"], owner=ctx.label(c), announce=False)
