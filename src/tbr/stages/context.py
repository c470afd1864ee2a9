"""What the stages of one run share: the config, the run folder, the grid, the data every
later stage reads, and each stage's fingerprints (a stage's fingerprint is an input of the
next one's, so a change anywhere reruns exactly what depends on it).

The pipeline makes one Context per run and passes it through the stages in order; each stage
reads what earlier stages recorded here and records its own results.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tbr.config import ExperimentConfig
from tbr.grid import Cell, cell_labels, cells, reflect_folder, untouched_labels
from tbr.runs import fingerprint


@dataclass(frozen=True)
class Subject:
    """A model whose outputs are generated, judged and evaluated: an untouched base model or a
    trained cell."""
    label: str
    path: str
    fp: str  # the fingerprint of the model itself (its train stage's, or of its name)


@dataclass
class Context:
    cfg: ExperimentConfig
    root: Path
    progress: bool = True
    until: str = "report"
    grid: list[Cell] = field(default_factory=list)
    labels: dict[Cell, str] = field(default_factory=dict)  # every cell's label, computed once
    general: list[dict[str, Any]] = field(default_factory=list)
    safety: list[dict[str, Any]] = field(default_factory=list)
    eval_rows: list[dict[str, Any]] = field(default_factory=list)
    data_fp: str = ""
    attack_fp: str = ""  # evaluate.attacks set: the fingerprint of the attack-wrapped evaluation rows
    reflect_fps: dict[tuple[str, str], str] = field(default_factory=dict)  # (model, source) -> fingerprint
    build_fps: dict[Cell, str] = field(default_factory=dict)
    pairs_fps: dict[Cell, str] = field(default_factory=dict)  # train.method dpo / sft+dpo only
    trained: dict[Cell, tuple[str, str]] = field(default_factory=dict)  # cell -> (model folder, train fp)
    generate_fps: dict[str, str] = field(default_factory=dict)  # subject label -> fingerprint
    judge_fps: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(cls, cfg: ExperimentConfig, root: Path, progress: bool = True, until: str = "report") -> Context:
        grid = cells(cfg)
        return cls(cfg, root, progress, until, grid=grid, labels=cell_labels(cfg, grid))

    @property
    def seed0(self) -> int:
        """The run's first seed: data sampling and reflections, shared by every cell."""
        return self.cfg.seed[0]

    @property
    def dev(self) -> dict[str, str]:
        return {"dtype": self.cfg.model.dtype, "device": self.cfg.model.device}

    @property
    def api_cache(self) -> Path:
        return self.root / "cache" / "api"

    def label(self, c: Cell) -> str:
        return self.labels[c]

    def reflect_dir(self, model: str, source: str) -> Path:
        return self.root / "reflect" / reflect_folder(model, source)

    def subjects(self) -> list[Subject]:
        """Every evaluated model, untouched ones first, then the trained cells in grid order."""
        out = [Subject(lab, m, fingerprint("untouched", m)) for lab, m in untouched_labels(self.cfg)]
        out += [Subject(self.label(c), path, tfp) for c, (path, tfp) in self.trained.items()]
        return out
