"""Compare finished runs side by side, in the layout of the paper's Table 3.

Rows are metrics, grouped as the paper groups them:
  false refusal  compliance rate (CR) on safe prompts, one row per suite (higher is better)
  safety         CR on unsafe prompts, one row per suite (lower is better)
  general        each lm-eval task's headline metric from <run>/general/general.json
Columns are (run, model label), e.g. `demo/untouched`, `demo/baseline`, `demo/tbr`.

Compliance rates use each run's primary judge, as recorded in its metrics.json, and one
prompting mode (`plain` by default, as in the paper). Pure functions build the table; one
function writes compare.md, compare.csv, compare.json and compare.png.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from tbr.errors import TbrError
from tbr.io import atomic_write_json, atomic_write_text
from tbr.metrics import primary_metric, stderr_key
from tbr.report import plots
from tbr.report.common import ordered_labels
from tbr.seeds import seed_interval

SECTIONS = ("false refusal", "safety", "general")
ALL_SUITES = "all suites"


@dataclass
class Run:
    path: Path
    name: str
    metrics: dict[str, Any]
    general: dict[str, Any] | None = None
    digest: str = ""   # sha256 (first 16 hex) of the metrics.json bytes read: the figures' provenance


@dataclass
class Cell:
    value: float | None
    ci: tuple[float, float] | None = None   # Wilson 95% interval (compliance rates)
    stderr: float | None = None             # lm-eval's standard error (general tasks)
    n: int | None = None


@dataclass
class Row:
    section: str          # one of SECTIONS
    name: str             # suite name, or "task (metric)"
    direction: str        # "higher" | "lower"
    cells: list[Cell | None] = field(default_factory=list)

    @property
    def title(self) -> str:
        arrow = "↑" if self.direction == "higher" else "↓"
        if self.section == "false refusal":
            return f"{self.name}: safe CR {arrow}"
        if self.section == "safety":
            return f"{self.name}: unsafe CR {arrow}"
        return f"{self.name} {arrow}"


@dataclass
class Column:
    run: str
    label: str
    judge: str | None
    mode: str | None

    @property
    def header(self) -> str:
        return f"{self.run}/{self.label}"


@dataclass
class Table:
    columns: list[Column]
    rows: list[Row]
    runs: list[Run]

    def row(self, section: str, name: str) -> Row:
        for r in self.rows:
            if r.section == section and r.name == name:
                return r
        raise KeyError((section, name))


def find_metrics(run_dir: Path | str) -> Path:
    """A run's metrics.json: at its root (written by report) or under evaluate/."""
    p = Path(run_dir)
    if p.is_file() and p.suffix == ".json":
        return p
    if not p.exists():
        raise TbrError("no such run folder", path=p)
    for cand in (p / "metrics.json", p / "evaluate" / "metrics.json"):
        if cand.is_file():
            return cand
    raise TbrError("no metrics.json here (nor evaluate/metrics.json): not a finished run; "
                   "run `tbr run` (or `tbr eval`) to the evaluate stage first", path=p)


def _read_json(path: Path, raw: bytes | None = None) -> Any:
    """`path` parsed (or `raw`, its bytes already read); invalid JSON is a one-line error naming it."""
    try:
        return json.loads((path.read_bytes() if raw is None else raw).decode("utf-8"))
    except ValueError as e:
        raise TbrError(f"not valid JSON ({e})", path=path) from None


def load_run(run_dir: Path | str) -> Run:
    mpath = find_metrics(run_dir)
    root = mpath.parent.parent if mpath.parent.name == "evaluate" else mpath.parent
    raw = mpath.read_bytes()   # kept: its hash is the figures' provenance in RESULTS.md
    metrics = _read_json(mpath, raw)
    if not isinstance(metrics, dict) or "models" not in metrics or "primary_judge" not in metrics:
        raise TbrError("not a tbr metrics.json (no 'models' or 'primary_judge')", path=mpath)
    gpath = root / "general" / "general.json"
    general = _read_json(gpath) if gpath.is_file() else None
    return Run(path=root, name=root.resolve().name, metrics=metrics, general=general,
               digest=hashlib.sha256(raw).hexdigest()[:16])


def _unique_names(runs: Sequence[Run]) -> None:
    """Runs sharing a folder name get their parent folder prepended, then a counter."""
    names = [r.name for r in runs]
    for _i, r in enumerate(runs):
        if names.count(r.name) > 1:
            parts = r.path.resolve().parts[-2:]
            r.name = "/".join(parts)
    seen: dict[str, int] = {}
    for r in runs:
        k = seen.get(r.name, 0)
        seen[r.name] = k + 1
        if k:
            r.name = f"{r.name}#{k + 1}"


def _pick_mode(run: Run, mode: str | None) -> str | None:
    modes = list(run.metrics.get("modes") or [])
    if mode is not None:
        if mode not in modes:
            raise TbrError(f"mode {mode!r} was not evaluated in this run (modes: {', '.join(modes) or 'none'})",
                           path=run.path)
        return mode
    return default_mode(modes)


def default_mode(modes: Sequence[str]) -> str | None:
    """The mode a table shows when none is asked for: plain (the paper's), else the first."""
    if not modes:
        return None
    return "plain" if "plain" in modes else modes[0]


def _cr_cell(block: dict[str, Any] | None, prompt_label: str) -> Cell | None:
    r = (block or {}).get(prompt_label, {}).get("overall")
    if not r:
        return None
    ci = r.get("compliance_ci")
    return Cell(value=r.get("compliance"), ci=(ci[0], ci[1]) if ci else None, n=r.get("n"))


def _judged(run: Run, label: str, mode: str | None) -> dict[str, Any] | None:
    if mode is None:
        return None
    return (run.metrics["models"].get(label, {}).get(mode, {}) or {}).get(run.metrics["primary_judge"])


def build_table(runs: Sequence[Run], mode: str | None = None) -> Table:
    """The comparison table of loaded runs (see the module docstring)."""
    runs = list(runs)
    _unique_names(runs)
    cols: list[tuple[Run, Column]] = []
    for run in runs:
        m = _pick_mode(run, mode)
        labels = ordered_labels(run.metrics)
        labels += [lab for lab in (run.general or {}) if lab not in labels]   # general-only models
        for lab in labels:
            cols.append((run, Column(run=run.name, label=lab, judge=run.metrics["primary_judge"], mode=m)))

    # suites, in sorted order; an "all suites" row when columns cover more than one suite
    suites: list[str] = sorted({s for run, c in cols for s in ((_judged(run, c.label, c.mode) or {})
                                                              .get("by_suite") or {})})
    suite_rows = suites + ([ALL_SUITES] if len(suites) != 1 else [])
    rows: list[Row] = []
    for section, pl, direction in (("false refusal", "safe", "higher"), ("safety", "unsafe", "lower")):
        for s in suite_rows:
            row = Row(section, s, direction)
            for run, c in cols:
                j = _judged(run, c.label, c.mode)
                if j is None:
                    row.cells.append(None)
                    continue
                block = j.get("all") if s == ALL_SUITES else (j.get("by_suite") or {}).get(s)
                row.cells.append(_cr_cell(block, pl))
            if any(cell is not None for cell in row.cells):
                rows.append(row)

    tasks: dict[str, str | None] = {}   # task -> headline metric, from the first column holding it
    for run, c in cols:
        for task, tm in ((run.general or {}).get(c.label) or {}).items():
            if tasks.get(task) is None:
                tasks[task] = primary_metric(tm or {})
    for task, metric in tasks.items():
        if metric is None:
            continue
        row = Row("general", f"{task} ({metric})", "higher")
        for run, c in cols:
            tm = ((run.general or {}).get(c.label) or {}).get(task)
            if not tm or tm.get(metric) is None:
                row.cells.append(None)
                continue
            row.cells.append(Cell(value=tm[metric], stderr=tm.get(stderr_key(metric)), n=tm.get("n")))
        rows.append(row)
    table = Table(columns=[c for _, c in cols], rows=rows, runs=runs)
    _add_seed_means(table)
    return table


def _add_seed_means(table: Table) -> None:
    """For a cell trained on several seeds, one more column after its seeds' columns: the mean
    over seeds of every row, with the across-seed 95% t-interval (seeds.seed_interval) for the
    compliance rates; the per-seed columns stay, so nothing is hidden."""
    for run in table.runs:
        for agg in {a["name"]: a for a in run.metrics.get("across_seeds", []) if a["seeds"] > 1}.values():
            idx = [i for i, c in enumerate(table.columns) if c.run == run.name and c.label in agg["labels"]]
            if len(idx) < 2:
                continue
            first = table.columns[idx[0]]
            col = Column(run=run.name, label=f"{agg['name']} (mean of {len(idx)} seeds)", judge=first.judge,
                         mode=first.mode)
            at = idx[-1] + 1
            table.columns.insert(at, col)
            for r in table.rows:
                vals = [c.value for c in (r.cells[i] for i in idx) if c is not None and c.value is not None]
                si = seed_interval(vals)
                cell = None if not vals else Cell(
                    value=si["mean"], ci=(si["ci"][0], si["ci"][1]) if r.section != "general" and si["ci"][0] is not None
                    else None)
                r.cells.insert(at, cell)


def _v(cell: Cell | None) -> str:
    return "n/a" if cell is None or cell.value is None else f"{cell.value:.3f}"


def _detail(cell: Cell | None) -> str:
    if cell is None or cell.value is None:
        return "n/a"
    s = f"{cell.value:.3f}"
    if cell.ci is not None:
        s += f" [{cell.ci[0]:.2f}, {cell.ci[1]:.2f}]"
    elif cell.stderr is not None:
        s += f" ± {cell.stderr:.3f}"
    if cell.n is not None:
        s += f" (n={cell.n})"
    return s


def markdown_table(table: Table, detailed: bool = False) -> list[str]:
    """Lines of the markdown table: values only, or with intervals and n when `detailed`."""
    fmt = _detail if detailed else _v
    heads = [c.header for c in table.columns]
    lines = ["| metric | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for section in SECTIONS:
        rows = [r for r in table.rows if r.section == section]
        if not rows:
            continue
        lines.append(f"| **{section}** |" + " |" * len(heads))
        for r in rows:
            lines.append(f"| {r.title} | " + " | ".join(fmt(c) for c in r.cells) + " |")
    return lines


def to_markdown(table: Table, png_name: str | None = None) -> str:
    lines = ["# tbr compare", "",
             "Compliance rate (CR) = full compliance / judged prompts, by each run's primary judge; "
             "false refusal = CR on safe prompts (higher is better), safety = CR on unsafe prompts "
             "(lower is better); general = lm-eval accuracy (higher is better).", ""]
    lines += ["| run | folder | primary judge | mode |", "|---|---|---|---|"]
    for run in table.runs:
        modes = sorted({c.mode or "n/a" for c in table.columns if c.run == run.name})
        lines.append(f"| {run.name} | `{run.path}` | {run.metrics['primary_judge']} | {', '.join(modes)} |")
    judges = {r.metrics["primary_judge"] for r in table.runs}
    if len(judges) > 1:
        lines += ["", f"Note: the runs use different primary judges ({', '.join(sorted(judges))}); "
                  "their compliance rates are not directly comparable."]
    lines += ["", *markdown_table(table), "",
              "## With 95% intervals (Wilson for CR, ± lm-eval standard error for general) and n", "",
              *markdown_table(table, detailed=True), ""]
    if png_name:
        lines += [f"![compliance]({png_name})", ""]
    return "\n".join(lines)


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "metric", "direction", *[c.header for c in table.columns]])
    for r in table.rows:
        w.writerow([r.section, r.name, r.direction,
                    *["" if c is None or c.value is None else repr(float(c.value)) for c in r.cells]])
    return buf.getvalue()


def to_json(table: Table) -> dict[str, Any]:
    return {"columns": [{"run": c.run, "label": c.label, "judge": c.judge, "mode": c.mode, "header": c.header}
                        for c in table.columns],
            "runs": [{"name": r.name, "path": str(r.path), "primary_judge": r.metrics["primary_judge"]}
                     for r in table.runs],
            "rows": [{"section": r.section, "metric": r.name, "direction": r.direction,
                      "cells": [None if c is None else {"value": c.value, "ci": list(c.ci) if c.ci else None,
                                                        "stderr": c.stderr, "n": c.n} for c in r.cells]}
                     for r in table.rows]}


def plot_table(table: Table, out: Path) -> Path | None:
    """Grouped bars of safe and unsafe CR (over all suites) per column, with Wilson 95% CIs."""
    safe_row = next((r for r in table.rows if r.section == "false refusal" and r.name == ALL_SUITES), None)
    unsafe_row = next((r for r in table.rows if r.section == "safety" and r.name == ALL_SUITES), None)
    if safe_row is None:   # one suite: its row is the overall one
        safe_row = next((r for r in table.rows if r.section == "false refusal"), None)
    if unsafe_row is None:
        unsafe_row = next((r for r in table.rows if r.section == "safety"), None)
    keep = [i for i in range(len(table.columns))
            if any(row is not None and row.cells[i] is not None and cast(Cell, row.cells[i]).value is not None
                   for row in (safe_row, unsafe_row))]
    if not keep:
        return None

    def pts(row: Row | None) -> list[tuple[float | None, Sequence[float]]]:
        out_pts: list[tuple[float | None, Sequence[float]]] = []
        for i in keep:
            c = row.cells[i] if row is not None else None
            if c is None or c.value is None:
                out_pts.append((None, [0.0, 0.0]))
            else:
                out_pts.append((c.value, c.ci or (c.value, c.value)))
        return out_pts

    judges = sorted({table.columns[i].judge or "?" for i in keep})
    return plots.compliance_bars([table.columns[i].header for i in keep], pts(safe_row), pts(unsafe_row), out,
                                 title=f"compliance rate, all suites ({'judges' if len(judges) > 1 else 'judge'}: "
                                       f"{', '.join(judges)})")


def write_compare(run_dirs: Sequence[Path | str], out_dir: Path | str, mode: str | None = None) -> dict[str, Any]:
    """Load runs, build the table, write compare.md/.csv/.json/.png into out_dir."""
    if not run_dirs:
        raise TbrError("tbr compare needs at least one run folder")
    table = build_table([load_run(d) for d in run_dirs], mode=mode)
    out = Path(out_dir)
    png = plot_table(table, out / "compare.png")
    md = to_markdown(table, png.name if png else None)
    files = {"markdown": atomic_write_text(out / "compare.md", md),
             "csv": atomic_write_text(out / "compare.csv", to_csv(table)),
             "json": atomic_write_json(out / "compare.json", to_json(table))}
    if png:
        files["png"] = png
    return {"table": table, "markdown": md, "files": files}
