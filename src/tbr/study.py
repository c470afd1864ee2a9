"""A study: several experiments from one YAML, each a run folder made from a shared base config.

configs/study.yaml holds `base` (any experiment config) and `experiments`, each a name, the
question it answers and `set` (dotted config keys, as `tbr run --set` takes them, applied on top
of the base). Experiment NAME runs in <runs_dir>/NAME. `tbr study` runs them in order, each
reusing the stages another experiment already finished with the same fingerprint, and writes
RESULTS.md; `tbr compare --study` rewrites RESULTS.md from the run folders alone.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tbr.config import ExperimentConfig, config_from_data, read_yaml
from tbr.errors import TbrError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_TOP = {"name", "runs_dir", "results", "bar", "base", "experiments"}
_EXPERIMENT = {"name", "question", "set"}


@dataclass(frozen=True)
class Bar:
    """What a TBR cell must show against its baseline to meet the claim (issue 18)."""
    min_safe_gain: float = 0.10
    max_unsafe_rise: float = 0.02
    max_unsafe_upper: float = 0.04


@dataclass(frozen=True)
class Experiment:
    name: str
    question: str
    dotted: dict[str, Any]
    config: ExperimentConfig


@dataclass(frozen=True)
class Study:
    path: Path
    name: str
    runs_dir: Path
    results: Path
    bar: Bar
    experiments: list[Experiment] = field(default_factory=list)

    def run_dir(self, e: Experiment) -> Path:
        return self.runs_dir / e.name

    def command(self, e: Experiment) -> str:
        return f"tbr study {self.path.as_posix()} --only {e.name}"

    def pick(self, names: Sequence[str] | None) -> list[Experiment]:
        if not names:
            return list(self.experiments)
        known = [e.name for e in self.experiments]
        for n in names:
            if n not in known:
                raise TbrError(f"no experiment {n!r} in this study (known: {', '.join(known)})", path=self.path)
        return [e for e in self.experiments if e.name in names]


def _mapping(v: Any, where: str, path: Path) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise TbrError(f"{where}: expected a mapping, got {v!r}", path=path)
    return v


def load_study(path: str | Path) -> Study:
    """Parse and check every experiment's config before anything runs: a bad key in the last
    experiment is a one-line error now, not after hours of the first ones."""
    p = Path(path)
    if not p.is_file():
        raise TbrError("study file not found", path=p)
    data = _mapping(read_yaml(p), "top level", p)
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise TbrError(f"unknown study key '{unknown[0]}' (known: {', '.join(sorted(_TOP))})", path=p)
    runs_dir = Path(str(data.get("runs_dir", "runs/study")))
    bar_data = _mapping(data.get("bar"), "bar", p)
    try:
        bar = Bar(**{k: float(v) for k, v in bar_data.items()})
    except (TypeError, ValueError):
        raise TbrError(f"bar: expected min_safe_gain, max_unsafe_rise, max_unsafe_upper as numbers, got {bar_data!r}",
                       path=p) from None
    base = _mapping(data.get("base"), "base", p)
    for k in ("name", "runs_dir"):
        if k in base:
            raise TbrError(f"base.{k}: set by the study (runs_dir at the top, name per experiment)", path=p)
    entries = data.get("experiments")
    if not isinstance(entries, list) or not entries:
        raise TbrError("experiments: expected a non-empty list", path=p)
    out: list[Experiment] = []
    for i, e in enumerate(entries):
        e = _mapping(e, f"experiments[{i}]", p)
        bad = sorted(set(e) - _EXPERIMENT)
        if bad:
            raise TbrError(f"experiments[{i}]: unknown key '{bad[0]}' (known: name, question, set)", path=p)
        name = str(e.get("name", ""))
        if not _NAME.match(name):
            raise TbrError(f"experiments[{i}].name: expected a folder-safe name, got {name!r}", path=p)
        if name in {x.name for x in out}:
            raise TbrError(f"experiments[{i}].name: {name!r} appears twice", path=p)
        dotted = _mapping(e.get("set"), f"experiments[{i}].set", p)
        if {"name", "runs_dir"} & set(dotted):
            raise TbrError(f"experiments[{i}].set: name and runs_dir are set by the study", path=p)
        cfg = config_from_data({**base, "name": name, "runs_dir": str(runs_dir)}, where=f"{p}: experiment {name}",
                               dotted=dotted)
        out.append(Experiment(name, str(e.get("question", "")), dict(dotted), cfg))
    return Study(path=p, name=str(data.get("name", p.stem)), runs_dir=runs_dir,
                 results=Path(str(data.get("results", "RESULTS.md"))), bar=bar, experiments=out)
