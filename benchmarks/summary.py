"""`make bench`: run every benchmark script in its own process, one after the other, show its
output as it runs, then print one table of what each measured.

    .venv/bin/python benchmarks/summary.py            # train, generate, judge (tens of minutes)
    .venv/bin/python benchmarks/summary.py --only generate -- --tiny --n 8 --max-new-tokens 8

Each script prints a `summary: {json}` line (benchmarks/_common.emit_summary) before its
`ratio: X` last line; this collects them. Columns: the figure, its baseline (run beside it in
the same process), both values, the ratio, the share of the matmul peak (in the run's dtype) measured on the
spot (where a FLOP count means something), the CPU model and the thread count. A script that
fails is a row saying so, and the exit status is non-zero.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPTS = {"train": "train_throughput.py", "generate": "generate_throughput.py", "judge": "judge_throughput.py"}


def parse_summary(output: str) -> dict[str, Any] | None:
    """The last `summary: {json}` line of a script's output, or None."""
    found = None
    for line in output.splitlines():
        if line.startswith("summary: "):
            found = json.loads(line[len("summary: "):])
    return found


def _num(x: float) -> str:
    return f"{x:,.1f}" if x < 10_000 else f"{x:,.0f}"


def table(rows: list[tuple[str, dict[str, Any] | None]]) -> str:
    """A markdown table, one line per benchmark."""
    out = ["| benchmark | figure | value | baseline | baseline value | ratio | share of peak | CPU | threads |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, s in rows:
        if s is None:
            out.append(f"| {name} | failed: no summary line | | | | | | | |")
            continue
        basis = ", ".join(x for x in (s.get("flops"), s.get("peak_dtype")) if x)  # FLOP convention, peak's dtype
        share = "n/a" if s.get("peak_share") is None else f"{100 * s['peak_share']:.1f}% ({basis})"
        out.append(f"| {name} | {s['figure']} | {_num(s['value'])} {s['unit']} | {s['baseline']} | "
                   f"{_num(s['baseline_value'])} {s['unit']} | {s['ratio']:.2f} | {share} | {s['cpu']} | "
                   f"{s['threads']} |")
    return "\n".join(out)


def run(script: str, extra: list[str]) -> tuple[int, str]:
    """Run one script, echoing its stdout as it comes; return its exit status and stdout."""
    p = subprocess.Popen([sys.executable, str(HERE / script), *extra], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    lines = []
    for line in p.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    return p.wait(), "".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", choices=sorted(SCRIPTS), help="run only these (repeatable)")
    ap.add_argument("extra", nargs="*", help="after --: arguments passed to every script run")
    a = ap.parse_args(argv)
    rows: list[tuple[str, dict[str, Any] | None]] = []
    failed = False
    for name, script in SCRIPTS.items():
        if a.only and name not in a.only:
            continue
        print(f"== {script}", flush=True)
        rc, out = run(script, a.extra)
        summary = parse_summary(out) if rc == 0 else None
        failed |= summary is None
        rows.append((name, summary))
    print("\n" + table(rows), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
