"""`tbr compare RUN_DIR...`: one table of false refusal, safety and general ability across runs."""
from __future__ import annotations

import argparse
from typing import Any

from tbr.report.compare import markdown_table, write_compare


def register(sub: Any) -> None:
    p = sub.add_parser("compare", help="compare runs in one table (paper's Table 3 layout): markdown, CSV, PNG",
                       description="Reads each run's metrics.json (and general/general.json when present) and "
                                   "writes compare.md, compare.csv, compare.json and compare.png: rows are safe CR "
                                   "per suite, unsafe CR per suite and lm-eval accuracies; columns are run/model.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (each with metrics.json)")
    p.add_argument("--output", default="compare", help="output folder (default: ./compare)")
    p.add_argument("--mode", default=None, help="prompting mode to compare (default: plain, else the run's first)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    res = write_compare(args.run_dirs, args.output, mode=args.mode)
    print("\n".join(markdown_table(res["table"])))
    print()
    for path in res["files"].values():
        print(path)
    return 0
