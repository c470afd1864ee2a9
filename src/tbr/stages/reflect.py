"""The reflect stage: a safety reflection for each safety row, from one of several sources.

- internal: the model itself (or `reflect.model`), few-shot "Instruction / Explain" prompt
- external: an OpenAI-compatible model rewrites the refusal with a reasoning section first
- builtin:  the hand-written reflections shipped with the built-in safety set
- controls: shuffled (another row's reflection), generic (one fixed sentence), none (no reflection)

Output: reflections.jsonl with {id, reflection (null when dropped), source} per safety row.
"""
from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tbr.data.sources import reflection_exemplars
from tbr.errors import TbrError
from tbr.generation import hf_generate_texts
from tbr.grid import reflect_config
from tbr.io import RowAppender, atomic_write_json, atomic_write_text, read_jsonl, write_jsonl
from tbr.models import load_model
from tbr.prompts import REFLECTION_SEED, clean_reflection, reflection_fewshot
from tbr.remote import ChatClient
from tbr.runs import fingerprint
from tbr.stages.context import Context
from tbr.stages.reflect_external import external_reflections
from tbr.stages.reflect_quality import quality_markdown, quality_report
from tbr.stages.runner import run_stage

NAME = "reflect"

SOURCES = ("internal", "external", "builtin", "shuffled", "generic", "none")
GENERIC_REFLECTION = ("Before answering, it is worth considering what this request is for and whether "
                      "helping could cause harm.")


def is_degenerate(text: str, max_words: int = 60) -> str | None:
    """Why a generated reflection is unusable (empty, repetitive, over-long), or None."""
    words = text.split()
    if len(words) < 3:
        return "empty"
    if len(words) > max_words:
        return "over-long"
    # repetitive: a small share of distinct 3-grams means the model is looping
    grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    if len(grams) >= 6 and len(set(grams)) / len(grams) < 0.5:
        return "repetitive"
    return None


def shuffled_reflections(ids: Sequence[str], reflections: Sequence[str | None], seed: int) -> list[str | None]:
    """Each row gets another row's reflection: a seeded derangement (no row keeps its own)."""
    n = len(ids)
    if n < 2:
        return list(reflections)
    rng = random.Random(seed)
    perm = list(range(n))
    rng.shuffle(perm)
    # a random cyclic shift of a random order is a derangement
    shift = rng.randrange(1, n)
    target = [0] * n
    for k in range(n):
        target[perm[k]] = perm[(k + shift) % n]
    return [reflections[target[i]] for i in range(n)]


def internal_reflections(rows: list[dict[str, Any]], out: RowAppender, *, model_name: str, dtype: str,
                         device: str, max_new_tokens: int, batch_size: int, seed: int,
                         progress: bool = True) -> dict[str, int]:

    todo = [r for r in rows if r["id"] not in out.done]
    stats = {"generated": 0, "retried": 0, "dropped": 0}
    if not todo:
        return stats
    exemplars = reflection_exemplars()
    model, tok = load_model(model_name, dtype, device)
    prompts = [reflection_fewshot(r["prompt"], exemplars) for r in todo]
    stops = ["\n\n", "\nInstruction:", "Instruction:"]
    first = hf_generate_texts(model, tok, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                              stop=stops, progress=progress, desc="reflect", add_special_tokens=True)
    texts = [f"{REFLECTION_SEED} {clean_reflection(t)}".strip() for t in first]
    bad = [i for i, t in enumerate(texts) if is_degenerate(t)]
    if bad:
        # one retry with sampling: greedy decoding of a small model loops on some prompts
        stats["retried"] = len(bad)
        again = hf_generate_texts(model, tok, [prompts[i] for i in bad], max_new_tokens=max_new_tokens,
                                  batch_size=batch_size, stop=stops, do_sample=True, seed=seed,
                                  progress=progress, desc="reflect retry", add_special_tokens=True)
        for i, t in zip(bad, again):
            texts[i] = f"{REFLECTION_SEED} {clean_reflection(t)}".strip()
    for r, t in zip(todo, texts):
        why = is_degenerate(t)
        if why:
            stats["dropped"] += 1
            out.add({"id": r["id"], "reflection": None, "source": "internal", "dropped": why})
        else:
            stats["generated"] += 1
            out.add({"id": r["id"], "reflection": t, "source": "internal"})
    return stats


def reflect(out_dir: Path, safety: list[dict[str, Any]], *, source: str, model_name: str, cfg: Any,
            dtype: str = "auto", device: str = "auto", seed: int = 0, cache_dir: Path | None = None,
            progress: bool = True) -> dict[str, Any]:
    """Write out_dir/reflections.jsonl (one row per safety id, in input order) and a quality report."""
    if source not in SOURCES:
        raise TbrError(f"unknown reflection source {source!r} (known: {', '.join(SOURCES)})")
    out_file = Path(out_dir) / "reflections.jsonl"
    ids = [r["id"] for r in safety]
    stats: dict[str, Any] = {}
    if source == "internal":
        app = RowAppender(out_file)
        stats = internal_reflections(safety, app, model_name=cfg.model or model_name, dtype=dtype, device=device,
                                     max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, seed=seed,
                                     progress=progress)
        app.finish(ids)
    elif source == "external":
        base = cfg.api_base or os.environ.get("TBR_API_BASE")
        if not base or not cfg.api_model:
            raise TbrError("reflect.source 'external' needs reflect.api_base (or env TBR_API_BASE) "
                           "and reflect.api_model")
        client = ChatClient(base, cfg.api_model, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
                            timeout=cfg.timeout, max_retries=cfg.max_retries, cache_dir=cache_dir)
        app = RowAppender(out_file)
        stats = external_reflections(safety, client, app, progress=progress)
        got = {r["id"] for r in app.rows}
        for r in safety:  # rows the endpoint never rewrote are kept as dropped, so counts add up
            if r["id"] not in got:
                app.add({"id": r["id"], "reflection": None, "source": "external", "dropped": "api"})
        app.finish(ids)
    else:
        builtin = [r.get("builtin_reflection") for r in safety]
        if source in ("builtin", "shuffled"):
            missing = [r["id"] for r, b in zip(safety, builtin) if not b]
            if missing:
                raise TbrError(f"reflect.source {source!r} needs hand-written reflections, but {len(missing)} safety "
                               f"rows have none (first: {missing[0]}); use the built-in safety set, a file with a "
                               "'reflection' column, or another source")
        if source == "builtin":
            refl = builtin
        elif source == "shuffled":
            refl = shuffled_reflections(ids, builtin, seed)
        elif source == "generic":
            refl = [GENERIC_REFLECTION] * len(safety)
        else:  # none
            refl = [None] * len(safety)
        write_jsonl(out_file, [{"id": i, "reflection": t, "source": source} for i, t in zip(ids, refl)])
        stats = {"written": len(ids)}
    return stats


def run(ctx: Context) -> None:
    """One reflect folder per (model, source): every γ of that source shares its reflections."""
    for model, src in sorted({(c.model, c.source) for c in ctx.grid}):
        rdir = ctx.reflect_dir(model, src)
        rcfg = reflect_config(ctx.cfg, src)
        fp = fingerprint("reflect", src, {k: v for k, v in rcfg.items() if k != "source"}
                         if src in ("internal", "external") else {}, model, ctx.data_fp,
                         ctx.seed0)
        ctx.reflect_fps[(model, src)] = fp

        def do_reflect(out: Path, model: str = model, src: str = src) -> dict[str, Any]:
            stats = reflect(out, ctx.safety, source=src, model_name=model, cfg=ctx.cfg.reflect, seed=ctx.seed0,
                            cache_dir=ctx.api_cache, progress=ctx.progress, **ctx.dev)
            refl = {r["id"]: r.get("reflection") for r in read_jsonl(out / "reflections.jsonl")}
            rep = quality_report([{"prompt": r["prompt"], "reflection": refl.get(r["id"])} for r in ctx.safety])
            atomic_write_json(out / "quality.json", rep)
            atomic_write_text(out / "quality.md", quality_markdown(rep, src))
            return {**stats, "rows": len(refl), "with_reflection": sum(1 for v in refl.values() if v)}
        run_stage(rdir, stage=NAME, label=f"reflect [{src}]", fp=fp, config=rcfg,
                  inputs={"data": ctx.data_fp}, fn=do_reflect, outputs=["reflections.jsonl"], owner=rdir.name)
