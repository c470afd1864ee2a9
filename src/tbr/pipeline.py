"""`tbr run`: the whole experiment from one config, as a grid of cells.

A cell is one (model, seed, reflection source, γ) combination: it is built, trained,
generated, judged and evaluated once. γ=0 ignores the reflection source (it is the plain
safety-SFT baseline), so it is trained once per (model, seed) whatever the source axis says.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tbr.config import ExperimentConfig, model_entries, model_paths, to_dict
from tbr.errors import TbrError
from tbr.io import atomic_write_json, atomic_write_text, read_jsonl, write_jsonl
from tbr.labels import check_unique, folder_name, model_labels
from tbr.runs import fingerprint, run_lock
from tbr.stages import log, ownership, run_stage


@dataclass(frozen=True)
class Cell:
    model: str
    seed: int
    source: str
    gamma: float

    @property
    def key(self) -> str:
        m = self.model.replace("/", "_")
        return f"{m}-s{self.seed}-{self.source}-g{self.gamma:.2f}"


def cells(cfg: ExperimentConfig) -> list[Cell]:
    models = model_paths(cfg)
    out: list[Cell] = []
    for m, s, src, g in itertools.product(models, cfg.seed, cfg.reflect.source, cfg.build.gamma):
        if g == 0.0 or src == "none":
            src, g = "none", 0.0  # no reflections: the baseline, whatever the axes say
        c = Cell(m, s, src, g)
        if c not in out:
            out.append(c)
    return out


def cell_label(c: Cell, cfg: ExperimentConfig) -> str:
    """Human label: 'baseline', 'tbr', 'tbr-shuffled', 'tbr-g0.40', plus model/seed when they vary."""
    if c.gamma == 0.0:
        name = "baseline"
    else:
        name = "tbr"
        if len(cfg.reflect.source) > 1:
            name += f"-{c.source}"
        if len(cfg.build.gamma) > 2 or (len(cfg.build.gamma) == 2 and 0.0 not in cfg.build.gamma):
            name += f"-g{c.gamma:.2f}"
    if len(cfg.models) > 1:
        name = f"{base_labels(cfg)[c.model]}:{name}"
    if len(cfg.seed) > 1:
        name += f"-s{c.seed}"
    return name


def base_labels(cfg: ExperimentConfig) -> dict[str, str]:
    """Each base model's label (explicit, from a tbr run's manifest, or its folder's name)."""
    entries = model_entries(cfg)
    return dict(zip([p for p, _ in entries], model_labels(entries)))


def untouched_labels(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """(label, model) of each model evaluated as it is, before any fine-tuning."""
    if not cfg.generate.untouched:
        return []
    names = base_labels(cfg)
    if not cfg.build.gamma:  # evaluation only: the model's own label is the clearest
        return [(names[m], m) for m in model_paths(cfg)]
    if len(cfg.models) <= 1:
        return [("untouched", model_paths(cfg)[0])]
    return [(f"{names[m]}:untouched", m) for m in model_paths(cfg)]


def subject_labels(cfg: ExperimentConfig) -> list[str]:
    """Every label whose outputs get their own generate/ and judge/ folders; unique, or a
    TbrError before any work starts."""
    labels = [lab for lab, _ in untouched_labels(cfg)] + [cell_label(c, cfg) for c in cells(cfg)]
    check_unique(labels)
    return labels


STAGES = ("data", "reflect", "build", "train", "generate", "judge", "attribute", "evaluate", "report")


def run(cfg: ExperimentConfig, progress: bool = True, until: str = "report") -> Path:
    """Run every stage up to and including `until`; finished stages are skipped, so running
    one stage alone means running the pipeline up to it."""
    root = cfg.run_dir
    from tbr.preflight import preflight
    preflight(cfg)  # every check that needs no model, before the run folder exists
    fresh = not root.exists()
    try:
        with run_lock(root), ownership():
            return _run_locked(cfg, root, progress, until)
    except TbrError:
        if fresh:
            _remove_if_empty_run(root)
        raise


def _remove_if_empty_run(root: Path) -> None:
    """A run folder this invocation made and no stage finished in holds nothing worth
    keeping (config.yaml, a lock): remove it, so a bad input leaves nothing behind."""
    import shutil
    if root.is_dir() and not any(root.rglob("manifest.json")) and not any(root.rglob("*.partial")):
        shutil.rmtree(root, ignore_errors=True)


def _run_locked(cfg: ExperimentConfig, root: Path, progress: bool, until: str) -> Path:
    import yaml
    from tbr import build as B
    from tbr.data.sources import load_training
    from tbr.suites import load_suite_sampled

    if cfg.deterministic:
        from tbr.determinism import apply
        apply(cfg)
    if cfg.threads:
        import torch
        torch.set_num_threads(cfg.threads)
    atomic_write_text(root / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))
    if progress:
        from tbr.grid_status import print_status
        print_status(cfg)
    seed0 = cfg.seed[0]
    d = cfg.data
    dev = dict(dtype=cfg.model.dtype, device=cfg.model.device)

    # data ------------------------------------------------------------------------------
    data_dir = root / "data"
    data_fp = fingerprint("data", to_dict(d), seed0, _builtin_version())

    def do_data(out: Path) -> dict[str, Any]:
        gen = load_training("general", d.general.source, d.general.limit, seed0, d.general.columns)
        saf = load_training("safety", d.safety.source, d.safety.limit, seed0, d.safety.columns)
        ev: list[dict[str, Any]] = []
        sampling = []
        for s in d.eval:
            rows, info = load_suite_sampled(s, d.eval_limit, seed0)
            ev.extend(rows)
            sampling.append(info)
        write_jsonl(out / "general.jsonl", gen)
        write_jsonl(out / "safety.jsonl", saf)
        write_jsonl(out / "eval.jsonl", ev)
        atomic_write_json(out / "sampling.json", sampling)
        return {"general": len(gen), "safety": len(saf), "eval": len(ev),
                "eval_safe": sum(r["label"] == "safe" for r in ev),
                "eval_unsafe": sum(r["label"] == "unsafe" for r in ev)}
    run_stage(data_dir, stage="data", label="data", fp=data_fp, config=to_dict(d), inputs={}, fn=do_data,
              outputs=["general.jsonl", "safety.jsonl", "eval.jsonl", "sampling.json"], announce=False)
    general = read_jsonl(data_dir / "general.jsonl")
    safety = read_jsonl(data_dir / "safety.jsonl")
    eval_rows = read_jsonl(data_dir / "eval.jsonl")

    if until == "data":
        return root
    grid = cells(cfg)
    log(f"{len(grid)} cell(s): " + ", ".join(cell_label(c, cfg) for c in grid))

    # reflect (per model x source; reflections are shared by every γ of that source) ----
    refl_fp: dict[tuple[str, str], str] = {}
    for model, src in sorted({(c.model, c.source) for c in grid}):
        rdir = root / "reflect" / f"{model.replace('/', '_')}-{src}"
        rcfg = to_dict(cfg.reflect)
        rcfg.pop("source")
        fp = fingerprint("reflect", src, rcfg if src in ("internal", "external") else {}, model, data_fp, seed0)
        refl_fp[(model, src)] = fp

        def do_reflect(out: Path, model: str = model, src: str = src) -> dict[str, Any]:
            from tbr.reflect import reflect
            from tbr.reflect_quality import quality_markdown, quality_report
            stats = reflect(out, safety, source=src, model_name=model, cfg=cfg.reflect, seed=seed0,
                            cache_dir=root / "cache" / "api", progress=progress, **dev)
            refl = {r["id"]: r.get("reflection") for r in read_jsonl(out / "reflections.jsonl")}
            rep = quality_report([{"prompt": r["prompt"], "reflection": refl.get(r["id"])} for r in safety])
            from tbr.io import atomic_write_json
            atomic_write_json(out / "quality.json", rep)
            atomic_write_text(out / "quality.md", quality_markdown(rep, src))
            return {**stats, "rows": len(refl), "with_reflection": sum(1 for v in refl.values() if v)}
        run_stage(rdir, stage="reflect", label=f"reflect [{src}]", fp=fp, config={"source": src, **rcfg},
                  inputs={"data": data_fp}, fn=do_reflect, outputs=["reflections.jsonl"], owner=rdir.name)

    if until == "reflect":
        return root

    # build + train per cell --------------------------------------------------------------
    trained: dict[Cell, tuple[str, str]] = {}  # cell -> (model path, train fingerprint)
    for c in grid:
        label = cell_label(c, cfg)
        rdir = root / "reflect" / f"{c.model.replace('/', '_')}-{c.source}"
        bdir = root / "build" / c.key
        bfp = fingerprint("build", to_dict(cfg.build) | {"gamma": c.gamma}, c.seed, refl_fp[(c.model, c.source)],
                          data_fp)

        def do_build(out: Path, c: Cell = c, rdir: Path = rdir) -> dict[str, Any]:
            from tbr.models import load_tokenizer
            refl = {r["id"]: r.get("reflection") for r in read_jsonl(rdir / "reflections.jsonl")}
            rows, counts = B.mix(general, safety, refl, c.gamma, c.seed, cfg.build.separator)
            tok = load_tokenizer(c.model)
            for r in rows:
                r["prompt_text"], r["completion_text"] = B.render(tok, r["prompt"], r["target"],
                                                                  cfg.build.template, cfg.build.system_prompt)
            write_jsonl(out / "train.jsonl", rows)
            return counts
        run_stage(bdir, stage="build", label=f"build [{label}]", fp=bfp,
                  config=to_dict(cfg.build) | {"gamma": c.gamma}, inputs={"reflect": refl_fp[(c.model, c.source)]},
                  fn=do_build, outputs=["train.jsonl"], owner=label)

        if until == "build":
            continue
        tdir = root / "train" / c.key
        tfp = fingerprint("train", to_dict(cfg.train), c.model, c.seed, bfp, dev)

        def do_train(out: Path, c: Cell = c, bdir: Path = bdir) -> dict[str, Any]:
            from tbr.train import train
            return train(out, read_jsonl(bdir / "train.jsonl"), model_name=c.model, cfg=cfg.train, seed=c.seed,
                         progress=progress, **dev)
        run_stage(tdir, stage="train", label=f"train [{label}]", fp=tfp, config=to_dict(cfg.train),
                  inputs={"build": bfp}, fn=do_train, outputs=["train_log.jsonl", "train_summary.json"], owner=label)
        trained[c] = (str(tdir / "model"), tfp)

    if until in ("build", "train"):
        return root

    # generate + judge per evaluated model --------------------------------------------------
    subjects: list[tuple[str, str, str]] = []  # (label, model path, fingerprint)
    for lab, m in untouched_labels(cfg):
        subjects.append((lab, m, fingerprint("untouched", m)))
    for c, (path, tfp) in trained.items():
        subjects.append((cell_label(c, cfg), path, tfp))

    from tbr.evaluate import evaluate_run, judge_responses
    judge_fps: dict[str, str] = {}
    for lab, path, mfp in subjects:
        gdir = root / "generate" / folder_name(lab)
        gfp = fingerprint("generate", to_dict(cfg.generate), mfp, data_fp, dev)

        def do_generate(out: Path, lab: str = lab, path: str = path) -> dict[str, Any]:
            from tbr.generate import generate_responses
            g = cfg.generate
            return generate_responses(out / "responses.jsonl", eval_rows, model_name=path, model_label=lab,
                                      modes=g.modes, backend=g.backend, max_new_tokens=g.max_new_tokens,
                                      batch_size=g.batch_size, progress=progress,
                                      api={"api_base": g.api_base, "api_model": g.api_model,
                                           "api_key_env": g.api_key_env, "cache_dir": root / "cache" / "api"},
                                      **dev)
        run_stage(gdir, stage="generate", label=f"generate [{lab}]", fp=gfp, config=to_dict(cfg.generate),
                  inputs={"model": mfp}, fn=do_generate, outputs=["responses.jsonl"], owner=lab)

        if until == "generate":
            continue
        jdir = root / "judge" / folder_name(lab)
        # the learned judge's shipped weights are part of what it is: new weights rejudge every row
        jfp = fingerprint("judge", to_dict(cfg.judge), gfp, _judge_weights_version(cfg.judge.judges))

        def do_judge(out: Path, gdir: Path = gdir) -> dict[str, Any]:
            return judge_responses(read_jsonl(gdir / "responses.jsonl"), cfg.judge.judges, out, jcfg=cfg.judge,
                                   cache_dir=root / "cache" / "api")
        run_stage(jdir, stage="judge", label=f"judge [{lab}]", fp=jfp, config=to_dict(cfg.judge),
                  inputs={"generate": gfp}, fn=do_judge,
                  outputs=[f"{j}.jsonl" for j in cfg.judge.judges], owner=lab)
        judge_fps[lab] = jfp

    if until in ("generate", "judge"):
        return root

    # attribution (optional) ----------------------------------------------------------------
    if cfg.attribute.enabled or until == "attribute":
        adir = root / "attribute"
        afp = fingerprint("attribute", to_dict(cfg.attribute), [s[2] for s in subjects], data_fp)

        def do_attr(out: Path) -> dict[str, Any]:
            from tbr.attribute import run_attribution
            stats = run_attribution(out, {lab: path for lab, path, _ in subjects}, eval_rows, cfg.attribute,
                                    heatmaps=cfg.attribute.heatmaps, **dev)
            return {"models": len(subjects), "prompts": stats.get("n_prompts", 0) if isinstance(stats, dict) else 0}
        run_stage(adir, stage="attribute", label="attribute", fp=afp, config=to_dict(cfg.attribute),
                  inputs={"models": fingerprint(*[s[2] for s in subjects])}, fn=do_attr)

    if until == "attribute":
        return root

    # evaluate + report -----------------------------------------------------------------------
    edir = root / "evaluate"
    efp = fingerprint("evaluate", to_dict(cfg.evaluate), cfg.judge.primary, judge_fps, data_fp)
    labels = [s[0] for s in subjects]

    def do_eval(out: Path) -> dict[str, Any]:
        return evaluate_run(root, out, labels, eval_rows, cfg, cells={cell_label(c, cfg): c for c in grid})
    run_stage(edir, stage="evaluate", label="evaluate", fp=efp, config=to_dict(cfg.evaluate),
              inputs=judge_fps, fn=do_eval, outputs=["metrics.json"])

    if until == "evaluate":
        return root

    # general ability through lm-evaluation-harness (optional) ------------------------------
    if cfg.evaluate.general_tasks:
        gdir = root / "general"
        gfp = fingerprint("general", cfg.evaluate.general_tasks, cfg.evaluate.general_limit,
                          [s[2] for s in subjects], dev)

        def do_general(out: Path) -> dict[str, Any]:
            from tbr.general import run_general
            res = run_general(out, {lab: path for lab, path, _ in subjects}, list(cfg.evaluate.general_tasks),
                              cfg.evaluate.general_limit, **dev)
            return {"models": len(res), "tasks": len(cfg.evaluate.general_tasks)}
        run_stage(gdir, stage="general", label="general ability (lm-eval)", fp=gfp,
                  config={"tasks": cfg.evaluate.general_tasks, "limit": cfg.evaluate.general_limit},
                  inputs={"models": fingerprint(*[s[2] for s in subjects])}, fn=do_general, outputs=["general.json"])

    from tbr.report import write_report
    report = write_report(root)
    log(f"report: {report}")
    print(report)
    return root


_safe = folder_name  # older name, kept for callers outside this module


def _judge_weights_version(judges: list[str]) -> str | None:
    if "tbr" not in judges:
        return None
    from tbr.io import file_sha256
    from tbr.judges.learned import WEIGHTS
    return file_sha256(WEIGHTS) if WEIGHTS.exists() else None


def _builtin_version() -> str:
    """Hash of the shipped data files, so editing a built-in set invalidates cached stages."""
    from tbr.data.sources import BUILTIN_DIR
    from tbr.io import file_sha256
    return fingerprint(sorted((p.name, file_sha256(p)) for p in BUILTIN_DIR.glob("*.jsonl")))
