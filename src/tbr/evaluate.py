"""The judge and evaluate stages.

judge: every response gets a label from each configured judge (<judge>.jsonl: the response's
fields plus label, judge, raw). evaluate: judgements joined by id with the evaluation prompts
(safe/unsafe label, type), then compliance rates per model, mode, judge, label and type, and
paired differences between models on the same prompts. Nothing here depends on wall-clock
time, so the same judgements always give byte-identical metrics.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from tbr.errors import TbrError
from tbr.io import atomic_write_json, read_jsonl, write_jsonl
from tbr.metrics import breakdown, paired_bootstrap


def make_judge(name: str, jcfg: Any | None = None, cache_dir: Path | None = None) -> Any:
    from tbr.judges import get_judge
    if name in ("llm", "guard") and jcfg is not None:
        opts: dict[str, Any] = {}
        if jcfg.api_base:
            from tbr.remote import ChatClient
            if not jcfg.api_model:
                raise TbrError(f"judge '{name}' with judge.api_base needs judge.api_model")
            opts["client"] = ChatClient(jcfg.api_base, jcfg.api_model, api_key_env=jcfg.api_key_env,
                                        cache_dir=cache_dir)
        elif jcfg.model:
            from tbr.generate import make_local_generate_fn
            opts["generate_fn"] = make_local_generate_fn(jcfg.model)
        else:
            raise TbrError(f"judge '{name}' needs judge.model (a local model) or judge.api_base + judge.api_model")
        return get_judge(name, **opts)
    return get_judge(name)


def apply_judge(judge: Any, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Input rows with label, judge and raw added. A `label` already in a row (say, a gold
    label) is kept as `input_label` rather than silently overwritten."""
    verdicts = judge.judge(rows)
    out = []
    for r, v in zip(rows, verdicts):
        row = dict(r)
        if "label" in row:
            row["input_label"] = row.pop("label")
        row.update(label=v.label, judge=judge.name, raw=v.raw)
        out.append(row)
    return out


def judge_responses(responses: list[dict[str, Any]], judges: Sequence[str], out_dir: Path,
                    jcfg: Any | None = None, cache_dir: Path | None = None) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    for name in judges:
        judged = apply_judge(make_judge(name, jcfg, cache_dir), responses)
        write_jsonl(Path(out_dir) / f"{name}.jsonl", judged)
        c: dict[str, int] = {}
        for r in judged:
            c[r["label"]] = c.get(r["label"], 0) + 1
        counts[name] = c
    return counts


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
    from tbr.judge_eval import to_binary
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


def validated(judges: Sequence[str]) -> dict[str, Any]:
    """Each judge's measured accuracy on the frozen test split of judge-bench, as shipped in
    tbr/judges/judge_validation.json (written by `tbr judge-eval --labels bench --record`); {} for a judge
    nobody validated (llm, guard: they depend on the model behind them)."""
    import json
    p = Path(__file__).parent / "judges" / "judge_validation.json"
    if not p.exists():
        return {}
    data = json.loads(p.read_text(encoding="utf-8"))
    return {j: data["judges"][j] | {"labels": data["labels"], "n": data["n"]} for j in judges if j in data["judges"]}


def evaluate_run(root: Path, out_dir: Path, labels: Sequence[str], eval_rows: list[dict[str, Any]], cfg: Any,
                 cells: Mapping[str, Any]) -> dict[str, Any]:
    from tbr.pipeline import _safe
    prompts = {r["id"]: r for r in eval_rows}
    models: dict[str, Any] = {}
    primary: dict[tuple[str, str, str], dict[str, str]] = {}  # (model, mode, prompt_label) -> id -> label
    for lab in labels:
        models[lab] = {}
        for j in cfg.judge.judges:
            rows = joined(read_jsonl(root / "judge" / _safe(lab) / f"{j}.jsonl"), prompts)
            for mode in cfg.generate.modes:
                sub = [r for r in rows if r["mode"] == mode]
                by_suite = {}
                for s in sorted({r["suite"] for r in sub}):
                    by_suite[s] = breakdown([r for r in sub if r["suite"] == s])
                models[lab].setdefault(mode, {})[j] = {"all": breakdown(sub), "by_suite": by_suite}
                if j == cfg.judge.primary:
                    for pl in ("safe", "unsafe"):
                        primary[(lab, mode, pl)] = {r["id"]: r["label"] for r in sub if r["prompt_label"] == pl}
    pairs = []
    trained = [lab for lab in labels if lab in cells]           # every other label is an untouched model
    base_labels = [lab for lab in labels if lab not in cells]
    baselines = [lab for lab in trained if cells[lab].gamma == 0.0]
    from tbr.pipeline import untouched_labels
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
    cell_info = {lab: {"model": c.model, "seed": c.seed, "source": c.source, "gamma": c.gamma}
                 for lab, c in cells.items()}
    agreement, disagreements = judge_agreement(
        {lab: {j: read_jsonl(root / "judge" / _safe(lab) / f"{j}.jsonl") for j in cfg.judge.judges} for lab in labels},
        cfg.judge.primary)
    write_jsonl(Path(out_dir) / "disagreements.jsonl", disagreements)
    sampling_file = root / "data" / "sampling.json"
    sampling = json.loads(sampling_file.read_text(encoding="utf-8")) if sampling_file.is_file() else []
    metrics = {"primary_judge": cfg.judge.primary, "judges": list(cfg.judge.judges), "modes": list(cfg.generate.modes),
               "models": models, "paired": pairs, "cells": cell_info,
               "judge_validation": validated(cfg.judge.judges), "judge_agreement": agreement,
               "n_prompts": {"safe": sum(r["label"] == "safe" for r in eval_rows),
                             "unsafe": sum(r["label"] == "unsafe" for r in eval_rows)},
               "sampling": sampling}
    from tbr.seeds import aggregate_seeds
    if len(cfg.seed) > 1:
        metrics["across_seeds"] = aggregate_seeds(metrics)
    atomic_write_json(Path(out_dir) / "metrics.json", metrics)
    return {"models": len(labels), "pairs": len(pairs)}
