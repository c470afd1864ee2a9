"""The build stage: mix general and safety rows with safety reflection ratio γ, render them
with the model's chat template (or the paper's Alpaca template), and tokenize them with the
prompt masked out of the loss. The maths (which rows, which tokens) are pure functions.

Beyond the paper, a TBR cell may replace a share of its general rows with benign look-alikes
(build.benign): prompts that sound sensitive but are fine, trained as reflection (concluding
the request is fine) + helpful answer. In the paper's data a reflection only ever precedes a
refusal, so a small model learns "reflection, then refuse"; these rows show the other ending.
Replacing rather than adding keeps the training set's size, so the comparison costs no steps."""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tbr.data.sources import benign_file, benign_rows
from tbr.grid import Cell, build_config
from tbr.io import file_sha256, read_jsonl, write_jsonl
from tbr.models import load_tokenizer
from tbr.prompts import alpaca_prompt
from tbr.runs import fingerprint
from tbr.stages.context import Context
from tbr.stages.runner import run_stage

NAME = "build"

IGNORE = -100  # label value that torch's cross-entropy skips


def n_reflected(n: int, gamma: float) -> int:
    """How many of n safety rows carry a reflection: γ·n rounded half up (γ=.5, n=5 -> 3)."""
    return int(math.floor(gamma * n + 0.5))


def select_reflected(ids: Sequence[str], available: set[str], gamma: float, seed: int) -> list[str]:
    """The safety ids that carry a reflection, a deterministic function of (ids, γ, seed).

    One seeded permutation of the sorted ids is walked in order, taking rows whose reflection
    is available, until n_reflected(len(ids), γ) are taken. So for a fixed seed the chosen set
    at a smaller γ is contained in the set at a larger γ (a γ sweep adds reflections, it never
    reshuffles), and the result does not depend on the input order."""
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    want = n_reflected(len(order), gamma)
    chosen = [i for i in order if i in available][:want]
    return chosen


def replace_benign(general: list[dict[str, Any]], benign: list[dict[str, Any]], share: float, seed: int,
                   separator: str = " ") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """General rows with n_reflected(len(general), share) of them replaced by benign rows.

    Which general rows go and which benign rows come are seeded permutations of the sorted
    ids (so a larger share replaces a superset); kept general rows stay in input order and the
    benign rows follow them. Counts say how many were wanted and how many the set could give."""
    want = n_reflected(len(general), share)
    drop_order = sorted(r["id"] for r in general)
    random.Random(f"{seed}|benign-drop").shuffle(drop_order)
    take_order = sorted(benign, key=lambda r: r["id"])
    random.Random(f"{seed}|benign-take").shuffle(take_order)
    took = take_order[:want]
    dropped = set(drop_order[:len(took)])
    rows = [r for r in general if r["id"] not in dropped]
    rows += [{"id": r["id"], "kind": "benign", "prompt": r["prompt"], "response": r["response"],
              "category": r.get("category") or r.get("type"), "source": "benign", "reflection": r["reflection"],
              "target": target_text(r["response"], r["reflection"], separator)} for r in took]
    return rows, {"benign": len(took), "benign_wanted": want, "benign_unavailable": want - len(took),
                  "benign_share": share}


def target_text(response: str, reflection: str | None, separator: str = " ") -> str:
    """The training target: reflection, separator, refusal; or the plain response."""
    if reflection:
        return reflection.strip() + separator + response.strip()
    return response.strip()


def mix(general: list[dict[str, Any]], safety: list[dict[str, Any]], reflections: dict[str, str | None],
        gamma: float, seed: int, separator: str = " ", benign: list[dict[str, Any]] | None = None,
        benign_share: float = 0.0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Training rows (general first, then any benign look-alikes, then safety, in input order)
    and counts for the manifest."""
    available = {i for i, t in reflections.items() if t}
    chosen = set(select_reflected([r["id"] for r in safety], available, gamma, seed))
    rows = [dict(r, reflection=None, target=target_text(r["response"], None)) for r in general]
    extra: dict[str, Any] = {}
    if benign_share:
        rows, extra = replace_benign(rows, benign or [], benign_share, seed, separator)
    for r in safety:
        refl = reflections.get(r["id"]) if r["id"] in chosen else None
        rows.append(dict({k: v for k, v in r.items() if k != "builtin_reflection"}, reflection=refl,
                         target=target_text(r["response"], refl, separator)))
    want = n_reflected(len(safety), gamma)
    counts = {"general": len(general), "safety": len(safety), "reflected": len(chosen),
              "reflected_wanted": want, "reflection_unavailable": want - len(chosen),
              "gamma": gamma, "gamma_effective": (len(chosen) / len(safety)) if safety else 0.0, **extra}
    if extra:
        counts["general"] = len(general) - extra["benign"]
    return rows, counts


def render(tok: Any, prompt: str, target: str, template: str = "chat",
           system_prompt: str | None = None) -> tuple[str, str]:
    """(prompt_text, completion_text) whose concatenation is the full training text.

    With the chat template, the completion is whatever the template appends for the assistant
    turn (content plus end-of-turn), so the model learns to stop."""
    if template == "alpaca":
        return alpaca_prompt(prompt), target + (tok.eos_token or "")
    msgs = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
        [{"role": "user", "content": prompt}]
    p = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": target}], tokenize=False)
    if not full.startswith(p):
        # templates that rewrite earlier turns (rare) cannot be split this way: fall back to
        # the content and an explicit end-of-sequence token
        return p, target + (tok.eos_token or "")
    return p, full[len(p):]


def mask_labels(prompt_ids: Sequence[int], completion_ids: Sequence[int],
                max_length: int) -> tuple[list[int], list[int]]:
    """input_ids and labels with every prompt token set to IGNORE, truncated to max_length.

    Truncation keeps the start (the prompt and the first response tokens); a row whose prompt
    alone fills max_length has no supervised token left, and the caller drops it."""
    ids = list(prompt_ids) + list(completion_ids)
    labels = [IGNORE] * len(prompt_ids) + list(completion_ids)
    return ids[:max_length], labels[:max_length]


def tokenize_row(tok: Any, prompt_text: str, completion_text: str, max_length: int) -> tuple[list[int], list[int]]:
    p = tok(prompt_text, add_special_tokens=False)["input_ids"]
    c = tok(completion_text, add_special_tokens=False)["input_ids"]
    return mask_labels(p, c, max_length)


def run(ctx: Context) -> None:
    """One training set per cell: its γ share of safety rows carry their reflection."""
    bc = ctx.cfg.build
    benign = benign_rows(bc.benign_source) if any(c.benign for c in ctx.grid) else []
    benign_fp = file_sha256(benign_file(bc.benign_source)) if benign else None
    for c in ctx.grid:
        rdir = ctx.reflect_dir(c.model, c.source)
        rfp = ctx.reflect_fps[(c.model, c.source)]
        bcfg = build_config(ctx.cfg, c)
        # the benign rows' hash only where a cell uses them: other cells keep their fingerprints
        bfp = fingerprint("build", bcfg, c.seed, rfp, ctx.data_fp, *([benign_fp] if c.benign else []))
        ctx.build_fps[c] = bfp

        def do_build(out: Path, c: Cell = c, rdir: Path = rdir) -> dict[str, Any]:
            refl = {r["id"]: r.get("reflection") for r in read_jsonl(rdir / "reflections.jsonl")}
            rows, counts = mix(ctx.general, ctx.safety, refl, c.gamma, c.seed, bc.separator,
                               benign=benign, benign_share=c.benign)
            tok = load_tokenizer(c.model)
            for r in rows:
                r["prompt_text"], r["completion_text"] = render(tok, r["prompt"], r["target"], bc.template,
                                                                bc.system_prompt)
            write_jsonl(out / "train.jsonl", rows)
            return counts
        run_stage(ctx.root / "build" / c.key, stage=NAME, label=f"build [{ctx.label(c)}]", fp=bfp,
                  config=bcfg, inputs={"reflect": rfp}, fn=do_build,
                  outputs=["train.jsonl"], owner=ctx.label(c))
