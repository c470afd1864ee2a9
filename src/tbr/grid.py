"""The grid of a run: its cells and the labels of everything it evaluates.

A cell is one (model, seed, reflection source, γ, benign share) combination: it is built,
trained, generated, judged and evaluated once. γ=0 ignores the reflection source and the benign
share (it is the plain safety-SFT baseline), so it is trained once per (model, seed) whatever
those axes say.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from tbr.config import ExperimentConfig, model_entries, model_paths, to_dict
from tbr.labels import check_unique, model_labels


@dataclass(frozen=True)
class Cell:
    model: str
    seed: int
    source: str
    gamma: float
    benign: float = 0.0

    @property
    def key(self) -> str:
        m = self.model.replace("/", "_")
        # no suffix without benign rows: folders and fingerprints of runs made before the axis stay valid
        tail = f"-b{self.benign:.2f}" if self.benign else ""
        return f"{m}-s{self.seed}-{self.source}-g{self.gamma:.2f}{tail}"


def cells(cfg: ExperimentConfig) -> list[Cell]:
    models = model_paths(cfg)
    out: list[Cell] = []
    for m, s, src, g, b in itertools.product(models, cfg.seed, cfg.reflect.source, cfg.build.gamma,
                                             cfg.build.benign or [0.0]):
        if g == 0.0 or src == "none":
            src, g, b = "none", 0.0, 0.0  # no reflections: the baseline, whatever the axes say
        c = Cell(m, s, src, g, b)
        if c not in out:
            out.append(c)
    return out


def cell_labels(cfg: ExperimentConfig, grid: list[Cell] | None = None) -> dict[Cell, str]:
    """The label of every cell of `grid` (default: the config's), the base models' labels read
    once (for a tbr-trained folder that means reading its train manifest)."""
    names = base_labels(cfg) if len(cfg.models) > 1 else {}
    return {c: _label(c, cfg, names) for c in (cells(cfg) if grid is None else grid)}


def cell_label(c: Cell, cfg: ExperimentConfig) -> str:
    """Human label: 'baseline', 'tbr', 'tbr-shuffled', 'tbr-g0.40', plus model/seed when they vary."""
    return cell_labels(cfg, [c])[c]


def _label(c: Cell, cfg: ExperimentConfig, names: dict[str, str]) -> str:
    if c.gamma == 0.0:
        name = "baseline"
    else:
        name = "tbr"
        if len(cfg.reflect.source) > 1:
            name += f"-{c.source}"
        if len(cfg.build.gamma) > 2 or (len(cfg.build.gamma) == 2 and 0.0 not in cfg.build.gamma):
            name += f"-g{c.gamma:.2f}"
        if c.benign:
            many = len(cfg.build.benign) > 2 or (len(cfg.build.benign) == 2 and 0.0 not in cfg.build.benign)
            name += f"+benign{c.benign:.2f}" if many else "+benign"
    if len(cfg.models) > 1:
        name = f"{names[c.model]}:{name}"
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
    labels = [lab for lab, _ in untouched_labels(cfg)] + list(cell_labels(cfg).values())
    check_unique(labels)
    return labels


def build_config(cfg: ExperimentConfig, c: Cell) -> dict[str, Any]:
    """What the build stage of one cell records as its config (and fingerprints): the axes
    replaced by the cell's values; the benign keys only for a cell that uses them, so cells of
    runs made before that option keep their fingerprints."""
    bcfg = to_dict(cfg.build)
    source = bcfg.pop("benign_source")
    bcfg.pop("benign")
    bcfg["gamma"] = c.gamma
    if c.benign:
        bcfg |= {"benign": c.benign, "benign_source": source}
    return bcfg


def train_config(cfg: ExperimentConfig) -> dict[str, Any]:
    """What the train stage records as its config (and fingerprints): the DPO keys only when
    train.method uses them, so SFT cells of runs made before DPO keep their fingerprints."""
    tcfg = to_dict(cfg.train)
    if tcfg["method"] == "sft":
        tcfg.pop("method")
        tcfg.pop("dpo")
    return tcfg


def reflect_folder(model: str, source: str) -> str:
    """reflect/<this>: one folder per (base model, reflection source), shared by every γ."""
    return f"{model.replace('/', '_')}-{source}"


def reflect_config(cfg: ExperimentConfig, source: str) -> dict[str, Any]:
    """What the reflect stage of one source records as its config (the source axis replaced
    by that one source)."""
    rcfg = to_dict(cfg.reflect)
    rcfg.pop("source")
    return {"source": source, **rcfg}
