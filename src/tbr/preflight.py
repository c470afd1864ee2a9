"""Checks that need no model, run before a run folder is made: each failure is one line
naming the key or file and what was expected, and leaves nothing on disk.

- every name the config gives is known: reflection sources, judges, suites, and models (a
  registry name, a local model folder, or a Hugging Face id); config.validate has checked
  types, ranges and everything else that needs no registry;
- every subject's label is unique (labels name the folders outputs go to);
- every file a run will read exists, is a file, and can be read: training sources and
  evaluation suites;
- no output aliases an input: the run folder is not an input, does not lie inside a model
  folder, and holds no input in a folder the run rewrites (only its own train/ models may be
  read back, as `tbr eval --model runs/demo/train/<cell>/model` does)."""
from __future__ import annotations

import os
from pathlib import Path

from tbr.attacks import resolve as resolve_attacks
from tbr.config import ExperimentConfig, model_entries, model_paths
from tbr.data.public import PUBLIC, resolve
from tbr.errors import TbrError
from tbr.grid import subject_labels
from tbr.judges import JUDGES
from tbr.models import REGISTRY
from tbr.stages.reflect import SOURCES
from tbr.suites import SUITES, split_suite


def check_input_file(path: str | Path, key: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise TbrError(f"{key}: file not found", path=p)
    if p.is_dir():
        raise TbrError(f"{key}: expected a file, got a folder", path=p)
    if not os.access(p, os.R_OK):
        raise TbrError(f"{key}: cannot read the file (permission denied)", path=p)
    return p


def input_files(cfg: ExperimentConfig) -> list[tuple[str, Path]]:
    """(config key, local file) of every file the run will read: data sources, suites, benign rows."""
    out: list[tuple[str, Path]] = []
    for kind in ("general", "safety"):
        src = getattr(cfg.data, kind).source
        head, sep, rest = src.partition(":")
        if src == "builtin" or (src in PUBLIC and not sep):
            continue
        path = rest if head in PUBLIC and sep else src
        if not sep and not Path(src).suffix and not Path(src).exists():
            resolve(src)  # neither a set nor a file: its own message lists what is known
        if head in PUBLIC and sep and "/" in rest and not Path(rest).suffix and not Path(rest).exists():
            continue  # NAME:owner/dataset, a hub copy
        out.append((f"data.{kind}.source", check_input_file(path, f"config key 'data.{kind}.source'")))
    for s in cfg.data.eval:
        name, inline = split_suite(s)
        if inline is not None:
            if "/" in inline and not Path(inline).suffix and not Path(inline).exists():
                continue  # SUITE:owner/dataset on the hub
            out.append(("data.eval", check_input_file(inline, "config key 'data.eval'")))
        elif name not in SUITES:
            out.append(("data.eval", check_input_file(name, "config key 'data.eval'")))
    if any(b > 0 for b in cfg.build.benign) and cfg.build.benign_source != "builtin":
        out.append(("build.benign_source", check_input_file(cfg.build.benign_source,
                                                            "config key 'build.benign_source'")))
    return out


def check_names(cfg: ExperimentConfig) -> None:
    """Every source, judge, suite and model the config names exists (the CLI runs this right
    after loading a config, so `tbr config` reports them too)."""
    for s in cfg.reflect.source:
        if s not in SOURCES:
            raise TbrError(f"config key 'reflect.source': unknown source {s!r} (known: {', '.join(SOURCES)})")
    for j in [*cfg.judge.judges, cfg.judge.primary]:
        if j not in JUDGES:
            raise TbrError(f"config key 'judge.judges': unknown judge {j!r} (known: {', '.join(JUDGES)})")
    for s in cfg.data.eval:
        name, _ = split_suite(s)
        if name not in SUITES and not Path(name).suffix:
            raise TbrError(f"config key 'data.eval': unknown suite {s!r} (known: {', '.join(SUITES)}, "
                           "SUITE:/path/to/file, or a file path)")
    if cfg.evaluate.attacks:
        names = resolve_attacks(cfg.evaluate.attacks)  # unknown names: one line, before any work
        if "prefill" in names and cfg.generate.backend == "openai":
            raise TbrError("config key 'evaluate.attacks': the prefill attack starts the model's reply, which an "
                           "OpenAI-compatible chat API cannot do; use the hf or vllm backend, or leave it out")
    check_models(cfg)


def check_models(cfg: ExperimentConfig) -> None:
    paths = [p for p, _ in model_entries(cfg)]
    named = [("models", m) for m in paths] if cfg.models else [("model.name", cfg.model.name)]
    for key, m in [*named, ("reflect.model", cfg.reflect.model), ("judge.model", cfg.judge.model)]:
        # the same rules as tbr.models.resolve, checked before any stage runs
        if m is None or m in REGISTRY:
            continue
        local = Path(m).expanduser()
        if local.exists():
            check_model_folder(local, key)
            continue
        if m.count("/") == 1 and not m.startswith((".", "/", "~")) and not Path(m.split("/")[0]).is_dir():
            continue  # a Hugging Face id (owner/name); a path under an existing local folder is a typo
        if "/" in m or m.startswith((".", "~")):
            raise TbrError(f"config key '{key}': model folder not found", path=m)
        raise TbrError(f"config key '{key}': unknown model {m!r} (expected a registry name: {', '.join(REGISTRY)}; "
                       "an existing local folder; or a Hugging Face id owner/name)")



def check_model_folder(path: Path, key: str) -> None:
    """A local model is a folder holding a transformers config or a PEFT adapter."""
    if not path.is_dir():
        raise TbrError(f"config key '{key}': expected a model folder, got a file", path=path)
    if not any((path / f).is_file() for f in ("config.json", "adapter_config.json")):
        raise TbrError(f"config key '{key}': not a model folder (no config.json or adapter_config.json in it)",
                       path=path)


def _inside(p: Path, root: Path) -> bool:
    try:
        p.relative_to(root)
        return True
    except ValueError:
        return False


def check_aliasing(cfg: ExperimentConfig, files: list[tuple[str, Path]]) -> None:
    run = cfg.run_dir.expanduser().resolve()
    if run.exists() and not run.is_dir():
        raise TbrError("config keys 'runs_dir'/'name': the run folder is a file, expected a folder", path=cfg.run_dir)
    models = [("models" if cfg.models else "model.name", Path(m).expanduser().resolve())
              for m in model_paths(cfg) if Path(m).expanduser().exists()]
    for key, p in [(k, f.resolve()) for k, f in files] + models:
        if p == run or _inside(run, p):
            raise TbrError(f"config key '{key}': the run folder {cfg.run_dir} would be written inside this input; "
                           "choose another name or runs_dir", path=p)
        if _inside(p, run) and not _inside(p, run / "train"):
            raise TbrError(f"config key '{key}': this input lies in the run folder {cfg.run_dir}, which the run "
                           "rewrites; copy it elsewhere or choose another run name", path=p)


def preflight(cfg: ExperimentConfig) -> None:
    check_names(cfg)
    subject_labels(cfg)
    check_aliasing(cfg, input_files(cfg))
