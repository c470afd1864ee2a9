"""`tbr run`: the whole experiment from one config, stage after stage.

The stage list below is the pipeline drawing in the README. Each stage module runs itself for
every unit it has (the run, a (model, source) pair, a grid cell, an evaluated model; see
tbr.grid) and records its fingerprints in the run's Context for the stages after it. Adding a
stage means one module in tbr.stages and one line here.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tbr import distributed
from tbr.config import ExperimentConfig, to_dict
from tbr.determinism import apply as apply_determinism
from tbr.errors import TbrError
from tbr.grid_status import print_status
from tbr.io import atomic_write_text
from tbr.preflight import preflight
from tbr.runs import run_lock
from tbr.stages import attack, attribute, build, data, evaluate, general, generate, judge, pairs, reflect, report, train
from tbr.stages.context import Context
from tbr.stages.runner import ownership

PIPELINE = (data, attack, reflect, build, pairs, train, generate, judge, attribute, evaluate, general, report)
STAGES = tuple(s.NAME for s in PIPELINE)


def run(cfg: ExperimentConfig, progress: bool = True, until: str = "report") -> Path:
    """Run every stage up to and including `until`; finished stages are skipped, so running
    one stage alone means running the pipeline up to it."""
    root = cfg.run_dir
    preflight(cfg)  # every check that needs no model, before the run folder exists
    fresh = not root.exists()
    try:
        with run_lock(root), ownership():
            _prepare(cfg, root, progress)
            ctx = Context.new(cfg, root, progress, until)
            for stage in PIPELINE:
                stage.run(ctx)
                if stage.NAME == until:
                    break
            return root
    except TbrError:
        if fresh:
            _remove_if_empty_run(root)
        raise


def _prepare(cfg: ExperimentConfig, root: Path, progress: bool) -> None:
    """Process settings the config asks for, its resolved copy in the run folder, the grid's status."""
    if cfg.deterministic:
        apply_determinism(cfg)
    if cfg.threads:
        import torch  # torch: keeps `tbr --help` and bad-input errors fast
        torch.set_num_threads(cfg.threads)
    atomic_write_text(root / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))
    if progress:
        print_status(cfg)


def _remove_if_empty_run(root: Path) -> None:
    """A run folder this invocation made and no stage finished in holds nothing worth
    keeping (config.yaml, a lock): remove it, so a bad input leaves nothing behind."""
    if root.is_dir() and not any(root.rglob("manifest.json")) and not any(root.rglob("*.partial")):
        shutil.rmtree(root, ignore_errors=True)


def run_launched(cfg: ExperimentConfig, progress: bool = True, until: str = "train") -> None:
    """`tbr <stage>` under a multi-process launcher: rank 0 runs the pipeline as usual (it alone
    takes the run lock and runs the stages before training); every `train` call it makes is
    sent to the other ranks, which train alongside it and write nothing."""
    if until not in STAGES[:STAGES.index("train") + 1]:
        raise TbrError(f"under a multi-process launch only the stages up to train run (asked: {until}); "
                       "run the later stages in one process (`tbr run`): the trained cells are skipped")
    rank, _ = distributed.world()
    distributed.init()
    if rank == 0:
        with distributed.lead():  # releases the other ranks also when rank 0 fails before training
            run(cfg, progress=progress, until=until)
        return
    distributed.follow(train.train_this_rank)
