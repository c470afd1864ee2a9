"""The evaluate stage: metrics.json from the judgements.

Judgements are joined by id with the evaluation prompts (safe/unsafe label, type), then
compliance rates per model, mode, judge, label and type, and paired differences between
models on the same prompts. Nothing here depends on wall-clock time, so the same judgements
always give byte-identical metrics.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tbr.attacks import NONE
from tbr.attacks.metrics import attack_metrics
from tbr.config import to_dict
from tbr.errors import TbrError
from tbr.grid import untouched_labels
from tbr.io import atomic_write_json, read_jsonl, write_jsonl
from tbr.judges.evaluation import VALIDATION, to_binary
from tbr.labels import folder_name
from tbr.metrics import breakdown, paired_bootstrap
from tbr.runs import fingerprint
from tbr.seeds import aggregate_seeds, pool_across_seeds
from tbr.stages.context import Context
from tbr.stages.runner import run_stage

NAME = "evaluate"


def joined(judged: Sequence[Mapping[str, Any]], prompts: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in judged:
        p = prompts.get(r["id"])
        if p is None:
            raise TbrError(f"judgement for id {r['id']!r} has no evaluation prompt")
        out.append({"id": r["id"], "mode": r.get("mode", "plain"), "label": r["label"], "prompt_label": p["label"],
                    "type": p["type"], "suite": p["suite"]})
    return out


def judge_agreement(judged: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
                    primary: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """How often each judge disagrees with the primary one on this run's rows, per model
    (binary: refusal vs compliance; undecided rows left out of the binary rate), and the rows
    where any two judges disagree in the binary sense, with every judge's label."""
    per: dict[str, Any] = {}
    rows_out: list[dict[str, Any]] = []
    for lab, by_judge in judged.items():
        maps = {j: {(r["id"], r.get("mode", "plain")): r for r in rows} for j, rows in by_judge.items()}
        keys = list(maps.get(primary, {}))
        per[lab] = {}
        for j, m in maps.items():
            if j == primary:
                continue
            both = [k for k in keys if k in m]
            bb = [(to_binary(maps[primary][k]["label"]), to_binary(m[k]["label"])) for k in both]
            decided = [(a, b) for a, b in bb if a is not None and b is not None]
            per[lab][j] = {"n": len(both),
                           "three_class_disagreement": (sum(maps[primary][k]["label"] != m[k]["label"] for k in both)
                                                        / len(both)) if both else None,
                           "binary_disagreement": (sum(a != b for a, b in decided) / len(decided)) if decided else None}
        for k in keys:
            labs = {j: m[k]["label"] for j, m in maps.items() if k in m}
            if len({b for b in map(to_binary, labs.values()) if b is not None}) > 1:
                r = maps[primary][k]
                rows_out.append({"id": k[0], "mode": k[1], "model": lab, "prompt": r.get("prompt"),
                                 "response": r.get("response"), "labels": labs})
    return per, rows_out


def truncation_shares(judged: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
                      primary: str) -> dict[str, Any]:
    """Per model: how many responses ran into their length budget, and how many of those were
    cut before any answer (judged `truncated`, counted apart)."""
    out: dict[str, Any] = {}
    for lab, by_judge in judged.items():
        rows = by_judge.get(primary, [])
        if not any("truncated" in r for r in rows):
            continue
        k = sum(bool(r.get("truncated")) for r in rows)
        j = sum(r.get("label") == "truncated" for r in rows)
        out[lab] = {"responses": len(rows), "truncated": k, "cut_before_answer": j,
                    "truncated_share": k / len(rows) if rows else None}
    return out


def validated(judges: Sequence[str]) -> dict[str, Any]:
    """Each judge's measured accuracy on the frozen test split of judge-bench, as shipped in
    tbr/judges/judge_validation.json (written by `tbr judge-eval --labels bench --record`); {} for a judge
    nobody validated (llm, guard: they depend on the model behind them)."""
    p = VALIDATION
    if not p.exists():
        return {}
    data = json.loads(p.read_text(encoding="utf-8"))
    return {j: data["judges"][j] | {"labels": data["labels"], "n": data["n"]} for j in judges if j in data["judges"]}


def evaluate_run(root: Path, out_dir: Path, labels: Sequence[str], eval_rows: list[dict[str, Any]], cfg: Any,
                 cells: Mapping[str, Any]) -> dict[str, Any]:
    prompts = {r["id"]: r for r in eval_rows}
    judged = {lab: {j: read_jsonl(root / "judge" / folder_name(lab) / f"{j}.jsonl") for j in cfg.judge.judges}
              for lab in labels}
    attacked = any(r.get("attack", NONE) != NONE for r in eval_rows)
    judged_all = judged
    if attacked:  # every table but the attack section is about the unwrapped prompts
        judged = {lab: {j: [r for r in rows if prompts[r["id"]].get("attack", NONE) == NONE] for j, rows in js.items()}
                  for lab, js in judged.items()}
        eval_rows = [r for r in eval_rows if r.get("attack", NONE) == NONE]
    models, primary = _rates(judged, prompts, cfg)
    pairs = _pairs(labels, primary, cfg, cells)
    # "benign" only where a cell has benign rows, so runs without that axis keep byte-identical metrics
    cell_info = {lab: {"model": c.model, "seed": c.seed, "source": c.source, "gamma": c.gamma,
                       **({"benign": c.benign} if c.benign else {})} for lab, c in cells.items()}
    agreement, disagreements = judge_agreement(judged, cfg.judge.primary)
    write_jsonl(Path(out_dir) / "disagreements.jsonl", disagreements)
    sampling_file = root / "data" / "sampling.json"
    sampling = json.loads(sampling_file.read_text(encoding="utf-8")) if sampling_file.is_file() else []
    metrics = {"primary_judge": cfg.judge.primary, "judges": list(cfg.judge.judges), "modes": list(cfg.generate.modes),
               "models": models, "paired": pairs, "cells": cell_info,
               "judge_validation": validated(cfg.judge.judges), "judge_agreement": agreement,
               "n_prompts": {"safe": sum(r["label"] == "safe" for r in eval_rows),
                             "unsafe": sum(r["label"] == "unsafe" for r in eval_rows)},
               "sampling": sampling}
    if attacked:
        duo = sorted({(p["a"], p["b"]) for p in pairs if p["a"] in cells and p["b"] in cells})  # baseline vs TBR
        metrics["attacks"] = attack_metrics(judged_all, prompts, primary=cfg.judge.primary, modes=cfg.generate.modes,
                                            pairs=duo, guard="guard" if "guard" in cfg.judge.judges else None,
                                            n_boot=cfg.evaluate.bootstrap, seed=cfg.seed[0])
    truncation = truncation_shares(judged, cfg.judge.primary)
    if truncation:  # only for responses that record it, so older runs' metrics stay byte-identical
        metrics["truncation"] = truncation
    if len(cfg.seed) > 1:
        metrics["across_seeds"] = aggregate_seeds(metrics)
        # seeds are training runs: a claim about TBR pools them, prompts resampled within each seed
        metrics["paired_across_seeds"] = pool_across_seeds(cell_info, pairs, primary, cfg.evaluate.bootstrap,
                                                           seed=cfg.seed[0])
    atomic_write_json(Path(out_dir) / "metrics.json", metrics)
    return {"models": len(labels), "pairs": len(pairs)}


Primary = dict[tuple[str, str, str], dict[str, str]]  # (model, mode, prompt_label) -> id -> primary judge's label


def _rates(judged: Mapping[str, Mapping[str, list[dict[str, Any]]]], prompts: Mapping[str, Mapping[str, Any]],
           cfg: Any) -> tuple[dict[str, Any], Primary]:
    """Compliance rates per model, mode and judge (overall and per suite), and the primary
    judge's label of every prompt for the paired differences."""
    models: dict[str, Any] = {}
    primary: Primary = {}
    for lab, by_judge in judged.items():
        models[lab] = {}
        for j in cfg.judge.judges:
            rows = joined(by_judge[j], prompts)
            for mode in cfg.generate.modes:
                sub = [r for r in rows if r["mode"] == mode]
                by_suite = {}
                for s in sorted({r["suite"] for r in sub}):
                    by_suite[s] = breakdown([r for r in sub if r["suite"] == s])
                models[lab].setdefault(mode, {})[j] = {"all": breakdown(sub), "by_suite": by_suite}
                if j == cfg.judge.primary:
                    for pl in ("safe", "unsafe"):
                        primary[(lab, mode, pl)] = {r["id"]: r["label"] for r in sub if r["prompt_label"] == pl}
    return models, primary


def _pairs(labels: Sequence[str], primary: Primary, cfg: Any, cells: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Paired bootstrap differences: untouched model vs each fine-tune of that same model, and
    baseline vs each TBR cell of the same model and seed."""
    pairs = []
    trained = [lab for lab in labels if lab in cells]           # every other label is an untouched model
    base_labels = [lab for lab in labels if lab not in cells]
    baselines = [lab for lab in trained if cells[lab].gamma == 0.0]
    untouched_model = dict(untouched_labels(cfg))  # label -> the base model it is
    for mode in cfg.generate.modes:
        # an untouched model is compared with the fine-tunes of that same model only
        wanted = [(b, t) for b in base_labels for t in trained if untouched_model.get(b, cells[t].model) == cells[t].model]
        wanted += [(b, t) for b in baselines for t in trained if t not in baselines and (cells[b].model, cells[b].seed) == (cells[t].model, cells[t].seed)]
        for a, b in wanted:
            for pl in ("safe", "unsafe"):
                if (a, mode, pl) in primary and (b, mode, pl) in primary:
                    d = paired_bootstrap(primary[(a, mode, pl)], primary[(b, mode, pl)], cfg.evaluate.bootstrap,
                                         seed=cfg.seed[0])
                    pairs.append({"a": a, "b": b, "mode": mode, "prompt_label": pl, **d})
    return pairs


def run(ctx: Context) -> None:
    cfg = ctx.cfg
    subjects = ctx.subjects()
    ecfg = to_dict(cfg.evaluate)
    if not ecfg["attacks"]:  # runs made before attacks keep their fingerprints
        ecfg.pop("attacks")
        ecfg.pop("attack_limit")
    efp = fingerprint("evaluate", ecfg, cfg.judge.primary, ctx.judge_fps, ctx.data_fp)
    labels = [s.label for s in subjects]

    def do_eval(out: Path) -> dict[str, Any]:
        return evaluate_run(ctx.root, out, labels, ctx.eval_rows, cfg, cells={ctx.label(c): c for c in ctx.grid})
    run_stage(ctx.root / NAME, stage=NAME, label="evaluate", fp=efp, config=ecfg,
              inputs=ctx.judge_fps, fn=do_eval, outputs=["metrics.json"])
