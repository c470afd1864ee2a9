"""report.html sections drawn from the stages' own files: attribution, training loss,
reflection quality and stage times."""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tbr.grid import Cell
from tbr.io import read_jsonl
from tbr.report import plots
from tbr.report.html_blocks import ci_span, esc, f3, img_tag, section, table

MAX_ATTR_HEATMAPS = 4


def attribution_section(root: Path) -> str:
    adir = root / "attribute"
    if not adir.is_dir():
        return ""
    body = ""
    if (adir / "attribution_summary.png").is_file():
        body += img_tag(adir / "attribution_summary.png", "attribution summary")
    sp = adir / "attribution_stats.json"
    if sp.is_file():
        st = json.loads(sp.read_text(encoding="utf-8"))
        rows = []
        for lab, v in (st.get("models") or {}).items():
            def cell(d: Mapping[str, Any] | None) -> str:
                if not d or d.get("mean") is None:
                    return '<span class="na">n/a</span>'
                return f"{d['mean']:.3f}" + ci_span([d.get("lo"), d.get("hi")] if d.get("lo") is not None else None)
            rows.append([esc(lab), cell(v.get("focus_share")), cell(v.get("ig_focus_share")),
                         esc(v.get("n_prompts"))])
        if rows:
            body += table(["model", "focus share (perturbation)", "focus share (integrated gradients)", "prompts"],
                           rows)
        pairs = st.get("paired") or []
        if pairs:
            body += f"<details><summary>Paired differences ({len(pairs)}; b minus a)</summary>" + table(
                ["a", "b", "metric", "n", "difference"],
                [[esc(p["a"]), esc(p["b"]), esc(p["metric"]), esc(p.get("n")),
                  (f"{p['diff']:+.4f}" + (f' <span class="ci">[{p["lo"]:+.4f}, {p["hi"]:+.4f}]</span>'
                                          if p.get("lo") is not None else "")) if p.get("diff") is not None
                  else '<span class="na">n/a</span>'] for p in pairs]) + "</details>"
    heat = sorted(adir.glob("heatmap_*.png"))[:MAX_ATTR_HEATMAPS]
    if heat:
        body += "<details><summary>Per-prompt heatmaps</summary>" + "".join(
            img_tag(p, p.stem) for p in heat) + "</details>"
    note = ("Share of the refusal target's attribution that falls on the sensitive (focus) word; TBR should lower it. "
            "95% bootstrap intervals.")
    return section("attribution", "Attribution", body, note) if body else ""


def loss_section(root: Path, m: Mapping[str, Any]) -> str:
    by_key = {}
    for lab, c in (m.get("cells") or {}).items():
        by_key[Cell(c["model"], c["seed"], c["source"], c["gamma"], c.get("benign", 0.0)).key] = lab
    curves: dict[str, list[tuple[float, float]]] = {}
    for log in sorted((root / "train").glob("*/train_log.jsonl")):
        pts = []
        for r in read_jsonl(log):
            if "loss" in r and "step" in r and r["loss"] is not None:
                pts.append((float(r["step"]), float(r["loss"])))
        if pts:
            curves[by_key.get(log.parent.name, log.parent.name)] = pts
    png = plots.loss_curves(curves, root / "loss_curves.png") if curves else None
    if png is None:
        return ""
    rows = []
    for log in sorted((root / "train").glob("*/train_summary.json")):
        s = json.loads(log.read_text(encoding="utf-8"))
        rows.append([esc(by_key.get(log.parent.name, log.parent.name)), esc(s.get("steps")), esc(s.get("rows")),
                     esc(s.get("supervised_tokens")), f3(s.get("train_loss"))])
    body = img_tag(png, "training loss curves")
    if rows:
        body += table(["cell", "steps", "rows", "supervised tokens", "mean train loss"], rows)
    return section("training", "Training", body)


def quality_section(root: Path) -> str:
    rows, details = [], []
    for q in sorted((root / "reflect").glob("*/quality.json")):
        d = json.loads(q.read_text(encoding="utf-8"))
        if not d.get("kept") and q.parent.name.endswith("-none"):
            continue   # the baseline's empty reflections say nothing
        w = d.get("words") or {}

        def pct(x: Any) -> str:
            return "n/a" if x is None else f"{100 * x:.1f}%"
        phrases = ", ".join(f"{esc(k)} ({v})" for k, v in list((d.get("refusal_phrases") or {}).items())[:3])
        rows.append([esc(q.parent.name), esc(d.get("n")), esc(d.get("kept")), pct(d.get("share_dropped")),
                     esc(w.get("median", "n/a")), f"{w['mean']:.1f}" if w.get("mean") is not None else "n/a",
                     pct(d.get("share_with_refusal_phrase")), pct(d.get("share_repeats_request")), phrases or "-"])
        ex = d.get("examples") or []
        if ex:
            details.append(f"<details><summary>Examples: {esc(q.parent.name)}</summary>" + table(
                ["prompt", "reflection", "refusal phrase", "repeats request"],
                [[esc(e.get("prompt")), esc(e.get("reflection")), esc(e.get("refusal_phrase") or "-"),
                  "yes" if e.get("repeats_request") else "no"] for e in ex]) + "</details>")
    if not rows:
        return ""
    body = table(["reflections", "rows", "kept", "dropped", "median words", "mean words", "with a refusal phrase",
                   "repeat the request", "top refusal phrases"], rows) + "".join(details)
    return section("reflections", "Reflection quality", body,
                    "A good reflection reasons about intent; one that already refuses, or only repeats the request, "
                    "teaches less.")


def timings_section(root: Path) -> str:
    p = root / "timings.json"
    if not p.is_file():
        return ""
    t = json.loads(p.read_text(encoding="utf-8"))
    if not t:
        return ""
    body = ("<details><summary>Stage wall times</summary>"
            + table(["stage", "seconds"], [[esc(k), f"{v:.1f}"] for k, v in t.items()]) + "</details>")
    return section("timings", "Stage times", body)
