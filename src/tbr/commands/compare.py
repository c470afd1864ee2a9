"""`tbr compare RUN_DIR...`: one table of false refusal, safety and general ability across runs."""
from __future__ import annotations

import argparse
from typing import Any

from tbr.errors import TbrError
from tbr.report.compare import markdown_table, write_compare
from tbr.report.results import write_results
from tbr.study import load_study


def register(sub: Any) -> None:
    p = sub.add_parser("compare", help="compare runs in one table (paper's Table 3 layout): markdown, CSV, PNG",
                       description="Reads each run's metrics.json (and general/general.json when present) and "
                                   "writes compare.md, compare.csv, compare.json and compare.png: rows are safe CR "
                                   "per suite, unsafe CR per suite and lm-eval accuracies; columns are run/model.")
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run folders (each with metrics.json)")
    p.add_argument("--study", metavar="STUDY_YAML",
                   help="instead of run folders: rewrite the study's RESULTS.md from its experiments' run folders")
    p.add_argument("--check", action="store_true",
                   help="with --study: write nothing; exit 1 when RESULTS.md differs from what its runs give")
    p.add_argument("--output", default="compare", help="output folder (default: ./compare)")
    p.add_argument("--mode", default=None, help="prompting mode to compare (default: plain, else the run's first)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.study:
        return _study(args)
    if args.check:
        raise TbrError("--check goes with --study")
    if not args.run_dirs:
        raise TbrError("give run folders to compare, or --study STUDY_YAML")
    res = write_compare(args.run_dirs, args.output, mode=args.mode)
    print("\n".join(markdown_table(res["table"])))
    print()
    for path in res["files"].values():
        print(path)
    return 0


def _study(args: argparse.Namespace) -> int:
    if args.run_dirs:
        raise TbrError("--study reads the study's own run folders: give no RUN_DIR with it")
    path, fresh = write_results(load_study(args.study), check=args.check)
    if args.check:
        print(f"{path}: {'matches its runs' if fresh else 'differs from its runs: run tbr compare --study'}")
        return 0 if fresh else 1
    print(path)
    return 0
