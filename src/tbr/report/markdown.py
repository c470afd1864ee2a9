"""The report stage: reads metrics files only (never a model) and writes, at the run
directory's root, metrics.json (a copy of evaluate's, byte for byte, plus a `review` block once `tbr review` has
labels), timings.json,
report.md (tables) and PNG plots."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tbr.errors import TbrError
from tbr.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from tbr.metrics import stderr_key
from tbr.report import plots
from tbr.report.attacks import attack_section
from tbr.report.common import ordered_labels
from tbr.report.html import write_report_html
from tbr.report.results import claim_lines
from tbr.report.review import review_markdown


def _fmt(r: dict[str, Any] | None) -> str:
    if not r or r.get("compliance") is None:
        return "n/a"
    lo, hi = r["compliance_ci"]
    s = f"{r['compliance']:.3f} [{lo:.2f}, {hi:.2f}] (n={r['n']}"
    if r.get("unparsed"):
        s += f", unparsed {r['unparsed']}"
    if r.get("uncertain"):
        s += f", uncertain {r['uncertain']}"
    if r.get("truncated"):
        s += f", cut before any answer {r['truncated']}"
    return s + ")"


def stage_timings(root: Path) -> dict[str, float]:
    out = {}
    for m in sorted(root.glob("*/manifest.json")) + sorted(root.glob("*/*/manifest.json")):
        try:
            data = json.loads(m.read_text())
        except ValueError:
            continue
        out[str(m.parent.relative_to(root))] = data.get("seconds", 0.0)
    return out


def sampling_lines(sampling: list[dict[str, Any]]) -> list[str]:
    """'N of M, stratified by ...' for every suite a limit cut; the whole suites are said too."""
    out = []
    for s in sampling:
        if s["kept"] < s["total"]:
            out.append(f"Suite `{s['suite']}`: sampled {s['kept']} of {s['total']} prompts, stratified by "
                       f"{s['stratified_by']} (seed {s['seed']}; data.eval_limit={s['limit']}).")
        else:
            out.append(f"Suite `{s['suite']}`: all {s['total']} prompts.")
    return out + [""] if out else []


def truncation_lines(m: dict[str, Any], labels: list[str]) -> list[str]:
    """Each model's share of responses that ran into the length budget."""
    t = m.get("truncation") or {}
    if not t:
        return []
    parts = [f"{lab} {t[lab]['truncated']}/{t[lab]['responses']} ({t[lab]['truncated_share']:.1%}, "
             f"{t[lab]['cut_before_answer']} before any answer)" for lab in labels if lab in t]
    return ["Responses that ran into the length budget: " + "; ".join(parts) + ". Those cut before any answer "
            "are labelled `truncated` and counted apart, never as compliance or refusal.", ""]


def judge_section(m: dict[str, Any], pj: str, labels: list[str]) -> list[str]:
    """How far to trust the numbers above: the primary judge's validated accuracy, and how
    often the judges disagree on this run's own rows."""
    out = ["## How far the judge can be trusted", ""]
    v = m.get("judge_validation", {}).get(pj)
    if v:
        diff, ci = v.get("max_abs_differential_bias"), v.get("max_abs_differential_bias_ci") or [None, None]
        clear = v.get("differential_bias_pairs_ci_excluding_zero")
        out.append(f"Primary judge `{pj}`, validated on the {v['labels']} (n={v['n']}, labelled by two annotators): "
                   f"binary accuracy {v['binary_accuracy']:.3f}, 3-class accuracy {v['three_class_accuracy']:.3f}"
                   + (f", largest differential bias between two models of one experiment {diff:.3f}" if diff is not None
                      else "")
                   + (f" (95% CI {ci[0]:+.3f} to {ci[1]:+.3f})" if ci[0] is not None else "")
                   + (f"; {clear[0]} of {clear[1]} model pairs have a differential-bias interval excluding 0"
                      if clear and clear[1] else "") + ". `tbr judge-eval` reproduces these numbers.")
    else:
        out.append(f"Primary judge `{pj}` has no validated accuracy shipped with tbr; measure it with "
                   f"`tbr judge-eval --judge {pj}` before trusting a difference.")
    agr = m.get("judge_agreement", {})
    others = sorted({j for lab in agr for j in agr[lab]})
    if others:
        out += ["", f"Disagreement with `{pj}` on this run's rows (binary: refusal vs compliance / 3-class):", "",
                "| model | " + " | ".join(others) + " |", "|---|" + "---|" * len(others)]
        for lab in labels:
            cells = []
            for j in others:
                x = agr.get(lab, {}).get(j)
                cells.append("n/a" if not x or x["binary_disagreement"] is None else
                             f"{x['binary_disagreement']:.3f} / {x['three_class_disagreement']:.3f} (n={x['n']})")
            out.append(f"| {lab} | " + " | ".join(cells) + " |")
        out += ["", "Rows where any two judges disagree (refusal vs compliance), with every judge's label: "
                "`evaluate/disagreements.jsonl`.", ""]
    return out + [""]


def write_report(root: Path) -> Path:
    """report.md, report.html, plots, and copies of metrics.json and the stage times, at the
    run folder's root."""
    root = Path(root)
    raw, m = _read_metrics(root)
    review = read_review(root)
    if review is None:
        atomic_write_bytes(root / "metrics.json", raw)  # a copy, byte for byte
    else:  # the evaluate stage's metrics plus what `tbr review` found
        m["review"] = review
        atomic_write_json(root / "metrics.json", m)
    timings = stage_timings(root)
    atomic_write_json(root / "timings.json", timings)

    pj = m["primary_judge"]
    labels = ordered_labels(m)
    lines = [f"# tbr report: {root.name}", "",
             f"Compliance rate (CR) = full compliance / judged prompts, with Wilson 95% intervals. "
             f"Primary judge: `{pj}`. Unparsed judgements are counted apart, never as refusals. "
             f"Prompts: {m['n_prompts']['safe']} safe, {m['n_prompts']['unsafe']} unsafe.", ""]
    lines += claim_lines(m)
    lines += sampling_lines(m.get("sampling", []))
    lines += truncation_lines(m, labels)
    for mode in m["modes"]:
        lines += _compliance_table(root, m, mode, labels)
        lines += _across_seeds(m, mode)
        lines += _paired(m, mode)
        lines += _every_judge(m, mode, labels)
        lines += _by_type(root, m, mode, labels)
    lines += attack_section(root, m)
    lines += judge_section(m, pj, labels)
    lines += review_markdown(review)
    lines += _general(root)
    attr = root / "attribute" / "attribution_stats.json"
    if attr.exists():
        lines += ["## Attribution", "", "Focus word's share of total absolute attribution to the refusal target.",
                  "", "```", attr.read_text().strip()[:3000], "```", ""]
    lines += ["## Stage wall times (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    lines += ["", "Rows behind every number: `generate/<model>/responses.jsonl`, "
              "`judge/<model>/<judge>.jsonl`, prompts in `data/eval.jsonl` (joined by `id`).", ""]
    out = atomic_write_text(root / "report.md", "\n".join(lines))
    write_report_html(root)
    return out


def read_review(root: Path) -> dict[str, Any] | None:
    """review/summary.json, which `tbr review` writes, or None when the run was not reviewed."""
    p = root / "review" / "summary.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TbrError(f"not valid JSON ({e}); rerun `tbr review` to remake it", path=p) from None


def _read_metrics(root: Path) -> tuple[bytes, dict[str, Any]]:
    src = root / "evaluate" / "metrics.json"
    if not src.exists():
        if not root.exists():
            raise TbrError("no such run folder", path=root)
        if not root.is_dir():
            raise TbrError("expected a run folder, got a file", path=root)
        raise TbrError("no evaluate/metrics.json: run the evaluate stage first", path=root)
    raw = src.read_bytes()
    try:
        m = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TbrError(f"not valid JSON ({e}); rerun `tbr run` to remake it", path=src) from None
    if not isinstance(m, dict) or not {"primary_judge", "models", "modes"} <= set(m):
        raise TbrError("expected tbr's metrics (keys primary_judge, models, modes, ...)", path=src)
    return raw, m


def _compliance_table(root: Path, m: dict[str, Any], mode: str, labels: list[str]) -> list[str]:
    pj = m["primary_judge"]
    lines = [f"## Compliance by model (mode `{mode}`)", "",
             "| model | safe CR (higher is better) | unsafe CR (lower is better) | safe full refusal | safe partial |",
             "|---|---|---|---|---|"]
    safe_pts, unsafe_pts = [], []
    for lab in labels:
        b = m["models"][lab][mode][pj]["all"]
        s, u = b.get("safe", {}).get("overall"), b.get("unsafe", {}).get("overall")
        fr = f"{s['full_refusal']:.3f}" if s and s.get("full_refusal") is not None else "n/a"
        pr = f"{s['partial_refusal']:.3f}" if s and s.get("partial_refusal") is not None else "n/a"
        lines.append(f"| {lab} | {_fmt(s)} | {_fmt(u)} | {fr} | {pr} |")
        safe_pts.append((s["compliance"] if s else None, s["compliance_ci"] if s else [0, 0]))
        unsafe_pts.append((u["compliance"] if u else None, u["compliance_ci"] if u else [0, 0]))
    png = plots.compliance_bars(labels, safe_pts, unsafe_pts, root / f"compliance_{mode}.png",
                                title=f"compliance ({pj} judge, mode {mode})")
    return lines + ["", f"![compliance]({png.name})", ""]


def _across_seeds(m: dict[str, Any], mode: str) -> list[str]:
    agg = [a for a in m.get("across_seeds", []) if a["mode"] == mode]
    if not agg:
        return []
    lines = ["### Across seeds (primary judge CR: mean [min, max] over seeds; 95% t-interval of the mean over seeds)",
             "", "| cell | source | γ | prompts | seeds | mean [min, max] | across-seed 95% CI |",
             "|---|---|---|---|---|---|---|"]
    for a in agg:
        v = "n/a" if a["mean"] is None else f"{a['mean']:.3f} [{a['min']:.3f}, {a['max']:.3f}]"
        ci = a.get("ci") or [None, None]
        c = "n/a" if ci[0] is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"
        lines.append(f"| {a['name']} | {a['source']} | {a['gamma']:.2f} | {a['prompt_label']} | "
                     f"{a['seeds']} | {v} | {c} |")
    pooled = [p for p in m.get("paired_across_seeds", []) if p["mode"] == mode]
    if pooled:
        lines += ["", "### Paired differences pooled over seeds (b minus a: mean over seeds of each seed's paired "
                  "difference; 95% CI from a bootstrap of seeds, then of prompts within each seed)", "",
                  "| a | b | prompts | seeds | per seed | CR difference |", "|---|---|---|---|---|---|"]
        for p in pooled:
            d = "n/a" if p["diff"] is None else f"{p['diff']:+.3f} [{p['ci'][0]:+.2f}, {p['ci'][1]:+.2f}]"
            per = ", ".join(f"{x:+.3f}" for x in p["per_seed"] if x is not None)
            lines.append(f"| {p['a']} | {p['b']} | {p['prompt_label']} (n={p['n']}) | {p['seeds']} | {per} | {d} |")
    return [*lines, ""]


def _paired(m: dict[str, Any], mode: str) -> list[str]:
    pairs = [p for p in m["paired"] if p["mode"] == mode]
    if not pairs:
        return []
    lines = ["### Paired differences (b minus a, same prompts, bootstrap 95% CI)", "",
             "| a | b | prompts | CR difference |", "|---|---|---|---|"]
    for p in pairs:
        d = "n/a" if p["diff"] is None else f"{p['diff']:+.3f} [{p['ci'][0]:+.2f}, {p['ci'][1]:+.2f}]"
        lines.append(f"| {p['a']} | {p['b']} | {p['prompt_label']} (n={p['n']}) | {d} |")
    return [*lines, ""]


def _every_judge(m: dict[str, Any], mode: str, labels: list[str]) -> list[str]:
    lines = ["### Every judge, safe / unsafe CR", "", "| model | " + " | ".join(m["judges"]) + " |",
             "|---|" + "---|" * len(m["judges"])]
    for lab in labels:
        cells = []
        for j in m["judges"]:
            b = m["models"][lab][mode][j]["all"]
            s, u = b.get("safe", {}).get("overall"), b.get("unsafe", {}).get("overall")
            cells.append(f"{s['compliance']:.2f} / {u['compliance']:.2f}" if s and u and
                         s["compliance"] is not None and u["compliance"] is not None else "n/a")
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _by_type(root: Path, m: dict[str, Any], mode: str, labels: list[str]) -> list[str]:
    pj = m["primary_judge"]
    lines: list[str] = []
    for pl in ("safe", "unsafe"):
        types = sorted({t for lab in labels for t in m["models"][lab][mode][pj]["all"].get(pl, {}).get("by_type", {})})
        if not types:
            continue
        lines += [f"### CR by type, {pl} prompts", "", "| type | " + " | ".join(labels) + " |",
                  "|---|" + "---|" * len(labels)]
        vals = {}
        for t in types:
            row = []
            for lab in labels:
                r = m["models"][lab][mode][pj]["all"].get(pl, {}).get("by_type", {}).get(t)
                vals[(t, lab)] = r["compliance"] if r else None
                row.append(f"{r['compliance']:.2f} ({r['n']})" if r and r["compliance"] is not None else "n/a")
            lines.append(f"| {t} | " + " | ".join(row) + " |")
        png = plots.type_heatmap(labels, types, vals, root / f"types_{pl}_{mode}.png",
                                 title=f"CR by type, {pl} prompts ({pj})")
        lines += ["", f"![types]({png.name})", ""]
    return lines


def _general(root: Path) -> list[str]:
    gen = root / "general" / "general.json"
    if not gen.exists():
        return []
    g = json.loads(gen.read_text())
    tasks = sorted({t for v in g.values() for t in v})
    lines = ["## General ability (lm-evaluation-harness)", "",
             "| model | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for lab, res in g.items():
        cells = []
        for t in tasks:
            r = res.get(t, {})
            key = next((k for k in ("acc", "acc_norm", "exact_match,strict-match") if k in r), None)
            cells.append(f"{r[key]:.3f} ± {r.get(stderr_key(key)) or 0:.3f} "
                         f"(n={r.get('n', '?')})" if key and r[key] is not None else "n/a")
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    return [*lines, ""]
