"""HTML sections for the claim (TBR minus baseline against the bar, first on the page) and for
attacks (the heatmaps report.md draws, and TBR minus baseline per attack)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tbr.attacks.metrics import paired_by_attack
from tbr.report.html_blocks import esc, img_tag, section, table
from tbr.report.results import bar_text, meets_bar, paired_rows
from tbr.study import Bar


def _diff(p: Mapping[str, Any] | None) -> str:
    if not p or p.get("diff") is None:
        return "n/a"
    lo, hi = p["ci"]
    return f'{p["diff"]:+.3f} <span class="ci">[{lo:+.2f}, {hi:+.2f}]</span>'


def claim_section(m: Mapping[str, Any], bar: Bar | None = None) -> str:
    bar = bar or Bar()
    pairs = paired_rows(m)
    if not pairs:
        return ""
    rows = []
    for name, p in pairs.items():
        ok = meets_bar(p.get("safe"), p.get("unsafe"), bar)
        rows.append([esc(name), _diff(p.get("safe")), _diff(p.get("unsafe")),
                     {True: "<b>met</b>", False: "not met", None: "n/a"}[ok]])
    note = (f"TBR minus baseline on the same prompts (95% bootstrap; pooled over seeds where there are several), "
            f"judge {esc(m['primary_judge'])}. The bar: {esc(bar_text(bar))}.")
    return section("claim", "The claim on this run",
                   table(["TBR cell", "safe Δ", "unsafe Δ", "bar"], rows), note)


def attacks_section(root: Path, m: Mapping[str, Any]) -> str:
    a = m.get("attacks")
    if not a:
        return ""
    figs = [img_tag(p, p.stem, cap) for mode in m["modes"]
            for p, cap in ((root / f"attacks_unsafe_{mode}.png", f"attack success rate (unsafe CR), {mode}"),
                           (root / f"attacks_safe_{mode}.png", f"safe CR under attack, {mode}")) if p.is_file()]
    rows = [[esc(mode), esc(f"{x} vs {y}"), esc(att), _diff(d.get("unsafe")), _diff(d.get("safe"))]
            for (mode, x, y, att), d in paired_by_attack(a["paired"]).items()]
    body = "".join(figs) + (table(["mode", "pair", "attack", "unsafe Δ (attack success)", "safe Δ"], rows) if rows else "")
    return section("attacks", "Attacks", body,
                   f"Every prompt unwrapped (none) and under each attack; judge {esc(a['judge'])}.")
