"""report.html: one self-contained page per run that a person would rather look at than read.

Written by the report stage next to report.md. Everything is inside the file: CSS and a small
vanilla-JS prompt browser inline, every figure as a base64 PNG data URI, and the rows behind the
browser as JSON in a `<script type="application/json">` block. It opens from disk with no
network and no server.

Sections: the Table-3-style summary (tbr.report.compare's table of this one run), the grid's cells and
paired differences, γ curves (when the grid has more than one γ), reflection-source bars (when
it has more than one source), compliance bars, per-type heatmaps, attribution, training loss,
reflection quality, stage times, and a browser of every prompt with each model's response and
every judge's label, filterable by suite, type, prompt label, judge label, model and mode,
plus a text search. Filters live in the URL hash (`report.html#model=baseline&plabel=safe`),
so a filtered view can be shared as a link.

Model output is untrusted: Python-rendered text goes through html.escape, the JSON block has
`<`, `>` and `&` escaped as \\u escapes, and the JS writes text only with textContent.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tbr.io import atomic_write_text
from tbr.report import plots
from tbr.report.browser import browser_data
from tbr.report.compare import SECTIONS, build_table, load_run
from tbr.report.html_blocks import ci_span, esc, f3, img_tag, json_for_script, load_metrics, overall, section, table
from tbr.report.html_claims import attacks_section, claim_section
from tbr.report.html_stages import attribution_section, loss_section, quality_section, timings_section
from tbr.report.review import review_html

# ---------------------------------------------------------------------------------------------
# sections


def summary_section(root: Path, m: Mapping[str, Any]) -> str:
    """The paper's Table 3 layout for this run: tbr.report.compare.build_table on the one run."""
    run = load_run(root)
    parts = []
    for mode in m["modes"] or [None]:
        t = build_table([run], mode=mode)
        head = ["metric"] + [esc(c.label) for c in t.columns]
        rows = []
        for sec in SECTIONS:
            srows = [r for r in t.rows if r.section == sec]
            if not srows:
                continue
            rows.append([f"<b>{esc(sec)}</b>"] + [""] * len(t.columns))
            for r in srows:
                vals = [c.value if c is not None else None for c in r.cells]
                known = [v for v in vals if v is not None]
                best = (max(known) if r.direction == "higher" else min(known)) if known else None
                cells = []
                for c in r.cells:
                    if c is None or c.value is None:
                        cells.append('<span class="na">n/a</span>')
                        continue
                    s = f"{c.value:.3f}"
                    if best is not None and c.value == best and len(known) > 1:
                        s = f"<b>{s}</b>"
                    if c.ci is not None:
                        s += ci_span(c.ci)
                    elif c.stderr is not None:
                        s += f' <span class="ci">± {c.stderr:.3f}</span>'
                    if c.n is not None:
                        s += f' <span class="n">n={c.n}</span>'
                    cells.append(s)
                rows.append([esc(r.title)] + cells)
        title = f"mode <code>{esc(mode)}</code>" if mode else ""
        parts.append(f"<h3>{title}</h3>" + table(head, rows, "summary"))
    note = (f"Compliance rate (CR) = full compliance / judged prompts, primary judge <code>{esc(m['primary_judge'])}"
            f"</code>, Wilson 95% intervals; best value of each row in bold. "
            f"Prompts: {m['n_prompts']['safe']} safe, {m['n_prompts']['unsafe']} unsafe.")
    return section("summary", "Summary (the paper's Table 3 layout)", "".join(parts), note)


def cells_section(m: Mapping[str, Any]) -> str:
    cells = m.get("cells") or {}
    body = ""
    if cells:
        body += table(["label", "model", "seed", "reflection source", "γ"],
                       [[esc(lab), esc(c["model"]), esc(c["seed"]), esc(c["source"]), f"{c['gamma']:.2f}"]
                        for lab, c in cells.items()])
    pairs = m.get("paired") or []
    if pairs:
        rows = []
        for p in pairs:
            d = ('<span class="na">n/a</span>' if p.get("diff") is None
                 else f"{p['diff']:+.3f}" + (f' <span class="ci">[{p["ci"][0]:+.2f}, {p["ci"][1]:+.2f}]</span>'
                                             if p.get("ci") and p["ci"][0] is not None else ""))
            rows.append([esc(p["a"]), esc(p["b"]), esc(p["mode"]), esc(p["prompt_label"]), esc(p.get("n")), d])
        body += (f"<details><summary>Paired differences ({len(rows)}; b minus a, same prompts, bootstrap 95% CI)"
                 "</summary>" + table(["a", "b", "mode", "prompts", "n", "CR difference"], rows) + "</details>")
    return section("grid", "Grid cells", body) if body else ""


def _groups(cells: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, int], dict[str, Mapping[str, Any]]]:
    out: dict[tuple[str, int], dict[str, Mapping[str, Any]]] = {}
    for lab, c in cells.items():
        out.setdefault((c["model"], c["seed"]), {})[lab] = c
    return out


def _group_name(key: tuple[str, int], groups: Mapping) -> str:
    models = {k[0] for k in groups}
    seeds = {k[1] for k in groups}
    parts = []
    if len(models) > 1:
        parts.append(key[0].split("/")[-1])
    if len(seeds) > 1:
        parts.append(f"seed {key[1]}")
    return " ".join(parts)


def _seed_series(m: Mapping[str, Any], mode: str) -> dict[str, list]:
    """γ curves over seeds: one curve per model, reflection source and benign share, through
    the seed mean, with the seeds' range as its band; γ=0 is each model's baseline."""
    agg = [a for a in m["across_seeds"] if a["mode"] == mode and a["mean"] is not None]
    models = sorted({a["model"] for a in agg})
    series: dict[str, list] = {}
    for model in models:
        mine = [a for a in agg if a["model"] == model]
        for src, b in sorted({(a["source"], a.get("benign", 0.0)) for a in mine if a["source"] != "none"}):
            name = f"{src}+benign{b:g}" if b else src
            for pl in ("safe", "unsafe"):
                pts = [(a["gamma"], a["mean"], [a["min"], a["max"]]) for a in mine if a["prompt_label"] == pl and (
                    (a["source"] == "none" and a["gamma"] == 0.0) or (a["source"] == src and a.get("benign", 0.0) == b))]
                if pts:
                    prefix = model.split("/")[-1] if len(models) > 1 else ""
                    series[" ".join(x for x in (prefix, name, pl, "(seed mean)") if x)] = pts
    return series


def gamma_section(root: Path, m: Mapping[str, Any]) -> str:
    cells = m.get("cells") or {}
    if len({c["gamma"] for c in cells.values()}) < 2:
        return ""
    groups = _groups(cells)
    figs = []
    by_seed = bool(m.get("across_seeds"))
    for mode in m["modes"]:
        series: dict[str, list] = _seed_series(m, mode) if by_seed else {}
        for gk, members in ({} if by_seed else groups).items():
            gname = _group_name(gk, groups)
            base = [lab for lab, c in members.items() if c["gamma"] == 0.0]
            for src, b in sorted({(c["source"], c.get("benign", 0.0)) for c in members.values()
                                  if c["source"] != "none"}):
                # one curve per source and benign share: two cells at one γ are two curves, not one zigzag
                labs = base + [lab for lab, c in members.items() if c["source"] == src and c.get("benign", 0.0) == b]
                name = f"{src}+benign{b:g}" if b else src
                for pl in ("safe", "unsafe"):
                    pts = []
                    for lab in labs:
                        r = overall(m, lab, mode, pl)
                        if r and r.get("compliance") is not None:
                            pts.append((cells[lab]["gamma"], r["compliance"], r["compliance_ci"]))
                    if pts:
                        series[" ".join(x for x in (gname, name, pl) if x)] = pts
        if series:
            png = plots.gamma_curve(series, root / f"gamma_{mode}.png",
                                    title=f"compliance vs γ ({m['primary_judge']} judge, mode {mode})")
            figs.append(img_tag(png, f"gamma curve, mode {mode}"))
    bands = ("Lines: mean over seeds; shaded bands: the range over seeds (min to max)" if by_seed
             else "Shaded bands: Wilson 95% intervals")
    note = ("Compliance on safe prompts should rise with γ (the paper: XSTest-SAFE .74 → .92 on Llama-2-7B) while "
            f"compliance on unsafe prompts stays near 0. {bands}; γ=0 is the shared baseline.")
    return section("gamma", "γ curves", "".join(figs), note) if figs else ""


def sources_section(root: Path, m: Mapping[str, Any]) -> str:
    cells = m.get("cells") or {}
    if len({c["source"] for c in cells.values() if c["source"] != "none"}) < 2:
        return ""
    groups = _groups(cells)
    figs = []
    for mode in m["modes"]:
        for i, (gk, members) in enumerate(groups.items()):
            tbr_cells = {lab: c for lab, c in members.items() if c["source"] != "none"}
            if not tbr_cells:
                continue
            gmax = max(c["gamma"] for c in tbr_cells.values())
            bars: list[tuple[str, str]] = []
            short = gk[0].split("/")[-1]
            for cand in ("untouched", f"{short}:untouched"):
                if cand in m["models"]:
                    bars.append(("untouched", cand))
                    break
            bars += [("baseline (γ=0)", lab) for lab, c in members.items() if c["gamma"] == 0.0]
            bars += [(f"{c['source']}{'+benign' if c.get('benign') else ''} (γ={gmax:g})", lab)
                     for lab, c in sorted(tbr_cells.items(), key=lambda kv: (kv[1]["source"], kv[1].get("benign", 0.0)))
                     if c["gamma"] == gmax]
            safe: list[tuple[Any, Any]] = []
            unsafe: list[tuple[Any, Any]] = []
            for _, lab in bars:
                for pl, acc in (("safe", safe), ("unsafe", unsafe)):
                    r = overall(m, lab, mode, pl)
                    acc.append((r["compliance"], r["compliance_ci"]) if r and r.get("compliance") is not None
                               else (None, [0.0, 0.0]))
            gname = _group_name(gk, groups)
            suffix = f"_{i}" if len(groups) > 1 else ""
            png = plots.compliance_bars([b[0] for b in bars], safe, unsafe, root / f"sources_{mode}{suffix}.png",
                                        title=f"reflection source ({m['primary_judge']}, mode {mode}) {gname}".strip())
            figs.append(img_tag(png, f"reflection sources, mode {mode} {gname}"))
    note = ("Internal (the model's own reflections) vs external (a strong model's) vs controls "
            "(shuffled: another prompt's reflection; generic: one fixed text), at the grid's largest γ.")
    return section("sources", "Reflection sources", "".join(figs), note) if figs else ""


def figures_section(root: Path, m: Mapping[str, Any]) -> str:
    figs = []
    for mode in m["modes"]:
        p = root / f"compliance_{mode}.png"
        if p.is_file():
            figs.append(img_tag(p, f"compliance, mode {mode}", f"compliance by model, mode {mode}"))
    body = "".join(figs)
    heat = []
    for mode in m["modes"]:
        for pl in ("safe", "unsafe"):
            p = root / f"types_{pl}_{mode}.png"
            if p.is_file():
                heat.append(img_tag(p, f"CR by type, {pl} prompts, mode {mode}",
                                    f"CR by type, {pl} prompts, mode {mode}"))
    out = section("compliance", "Compliance by model", body) if body else ""
    if heat:
        out += section("types", "Compliance by prompt type", "".join(heat),
                        "Green: the model complies; red: it refuses. On safe types green is good, on unsafe red.")
    return out


_ASSETS = Path(__file__).parent / "assets"


def _asset(name: str) -> str:
    """The page's JS, CSS and browser markup live as package files, inlined at render time."""
    return (_ASSETS / name).read_text(encoding="utf-8")


def judges_section(m: Mapping[str, Any]) -> str:
    """The primary judge's validated accuracy and this run's disagreement between judges."""
    pj = m.get("primary_judge")
    v = m.get("judge_validation", {}).get(pj)
    agr = m.get("judge_agreement", {})
    if not v and not agr:
        return ""
    note = (f"Primary judge <code>{esc(pj)}</code>, validated on the {esc(v['labels'])} (n={v['n']}): binary accuracy "
            f"{f3(v['binary_accuracy'])}, 3-class {f3(v['three_class_accuracy'])}." if v else
            f"Primary judge <code>{esc(pj)}</code> has no validated accuracy; measure it with tbr judge-eval.")
    others = sorted({j for lab in agr for j in agr[lab]})
    rows = [[esc(lab)] + [("n/a" if not agr[lab].get(j) or agr[lab][j]["binary_disagreement"] is None else
                           f"{agr[lab][j]['binary_disagreement']:.3f}") for j in others] for lab in agr]
    body = table(["model"] + [f"disagrees with {esc(j)}" for j in others], rows) if others else ""
    return section("judges", "How far the judge can be trusted", body,
                    note + " Binary disagreement (refusal vs compliance) on this run's rows; the rows are in "
                           "evaluate/disagreements.jsonl.")


def render_html(root: Path) -> str:
    root = Path(root)
    m = load_metrics(root)
    sections = [claim_section(m), summary_section(root, m), judges_section(m), attacks_section(root, m),
                review_html(m.get("review")), gamma_section(root, m), sources_section(root, m), figures_section(root, m), cells_section(m), attribution_section(root), loss_section(root, m),
                quality_section(root), timings_section(root)]
    sections = [s for s in sections if s]
    data = browser_data(root, m)
    nav_items = [("claim", "Claim"), ("summary", "Summary"), ("judges", "Judges"), ("attacks", "Attacks"), ("review", "Review"), ("gamma", "γ curves"), ("sources", "Sources"), ("compliance", "Compliance"),
                 ("types", "Types"), ("grid", "Grid"), ("attribution", "Attribution"), ("training", "Training"),
                 ("reflections", "Reflections"), ("timings", "Times"), ("prompts", "Every prompt")]
    browser = _asset("browser.html")
    present = "".join(sections) + browser
    nav = "".join(f'<a href="#{sid}" onclick="document.getElementById(\'{sid}\').scrollIntoView();return false;">'
                  f"{esc(t)}</a>" for sid, t in nav_items if f'id="{sid}"' in present)
    sub = (f"{len(m['models'])} models · modes {', '.join(m['modes'])} · judges {', '.join(m['judges'])} "
           f"(primary {m['primary_judge']}) · {m['n_prompts']['safe']} safe / {m['n_prompts']['unsafe']} unsafe prompts")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
            f"<title>tbr report: {esc(root.resolve().name)}</title><style>{_asset('report.css')}</style></head><body>"
            f"<header><h1>tbr report: {esc(root.resolve().name)}</h1><div class=\"sub\">{esc(sub)}</div></header>"
            f"<nav>{nav}</nav><main>{''.join(sections)}{browser}</main>"
            f"<script type=\"application/json\" id=\"tbr-data\">{json_for_script(data)}</script>"
            f"<script>{_asset('report.js')}</script></body></html>\n")


def write_report_html(root: Path) -> Path:
    """Write root/report.html (see the module docstring) and return its path."""
    root = Path(root)
    return atomic_write_text(root / "report.html", render_html(root))
