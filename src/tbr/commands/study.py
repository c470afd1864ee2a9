"""`tbr study STUDY.yaml`: run a study's experiments in order, then write its RESULTS.md.

Each experiment is `tbr run` on its own config (the study's base plus the experiment's keys) in
<runs_dir>/<experiment>; a stage another experiment of the study already finished with the same
fingerprint is copied from there, so shared cells (a baseline, a γ=1 cell) train once. Rerun the
same command to resume: finished stages are skipped."""
from __future__ import annotations

import argparse
from typing import Any

from tbr import pipeline
from tbr.determinism import pin_kernels
from tbr.preflight import check_names
from tbr.report.results import write_results
from tbr.stages.runner import log, reuse_from
from tbr.study import load_study


def register(sub: Any) -> None:
    p = sub.add_parser("study", help="run a study's experiments (configs/study.yaml) and write RESULTS.md",
                       description=__doc__)
    p.add_argument("study", nargs="?", default="configs/study.yaml", help="study YAML (default: configs/study.yaml)")
    p.add_argument("--only", action="append", default=None, metavar="NAME",
                   help="run only this experiment (repeatable); RESULTS.md still covers them all")
    p.add_argument("--list", action="store_true", help="list the experiments and their run folders")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    study = load_study(args.study)
    chosen = study.pick(args.only)
    if args.list:
        for e in study.experiments:
            done = (study.run_dir(e) / "metrics.json").is_file()
            print(f"{e.name}\t{study.run_dir(e)}\t{'finished' if done else 'not finished'}\t{e.question}")
        return 0
    for e in chosen:
        check_names(e.config)
    donors = [study.run_dir(e) for e in study.experiments]
    for i, e in enumerate(chosen, 1):
        log(f"study {study.name}: experiment {i}/{len(chosen)}: {e.name}")
        if e.config.deterministic:
            pin_kernels()
        with reuse_from(study.run_dir(e), [d for d in donors if d.is_dir()]):
            pipeline.run(e.config, progress=not args.no_progress)
    path, _ = write_results(study)
    print(path)
    return 0
