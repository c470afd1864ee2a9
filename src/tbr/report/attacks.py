"""The report's attack section: attack × model heatmaps of unsafe compliance (attack success
rate) and safe compliance (over-refusal under adversarial wording), the harmful-compliance rate
where a guard judge ran, and the paired TBR-minus-baseline difference per attack."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tbr.attacks.metrics import paired_by_attack
from tbr.report import plots
from tbr.report.common import ordered_labels


def _cr(r: dict[str, Any] | None) -> str:
    if not r or r.get("compliance") is None:
        return "–"
    lo, hi = r["compliance_ci"]
    return f"{r['compliance']:.3f} [{lo:.2f}, {hi:.2f}] (n={r['n']})"


def attack_section(root: Path, m: dict[str, Any]) -> list[str]:
    a = m.get("attacks")
    if not a:
        return []
    labels = [lab for lab in ordered_labels(m) if lab in a["models"]]
    out = ["## Attacks", "",
           f"Every prompt unwrapped (`none`) and under each attack (`tbr eval --list-attacks`); judge `{a['judge']}`. "
           "Unsafe CR is the attack success rate, safe CR the compliance with benign prompts in adversarial "
           "wording; Wilson 95% intervals.", ""]
    for mode in m["modes"]:
        for pl, what, cmap in (("unsafe", "attack success rate (unsafe CR)", "RdYlGn_r"),
                               ("safe", "safe CR under attack", "RdYlGn")):
            out += [f"### {what}, mode {mode}", "", "| attack | " + " | ".join(labels) + " |",
                    "|---|" + "---|" * len(labels)]
            vals: dict[tuple[str, str], float | None] = {}
            for att in a["attacks"]:
                cells = [((a["models"][lab].get(mode) or {}).get(att) or {}).get(pl) for lab in labels]
                out.append(f"| {att} | " + " | ".join(_cr(c) for c in cells) + " |")
                for lab, c in zip(labels, cells):
                    vals[(att, lab)] = (c or {}).get("compliance")
            png = plots.type_heatmap(labels, a["attacks"], vals, root / f"attacks_{pl}_{mode}.png",
                                     title=f"{what} ({a['judge']})", cmap=cmap)
            out += ["", f"![{what}]({png.name})", ""]
        if a.get("guard"):
            out += [f"### Harmful compliance (primary judge: compliance, and `{a['guard']}`: harmful), mode {mode}", "",
                    "| attack | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
            for att in a["attacks"]:
                hs = [((a["models"][lab].get(mode) or {}).get(att) or {}).get("harmful") or {} for lab in labels]
                out.append(f"| {att} | " + " | ".join("–" if h.get("rate") is None else
                                                      f"{h['rate']:.3f} (n={h['n']})" for h in hs) + " |")
            out.append("")
        pairs = [p for p in a["paired"] if p["mode"] == mode]
        if pairs:
            out += [f"### TBR minus baseline per attack, mode {mode} (same prompts, bootstrap 95% CI)", "",
                    "| baseline | TBR | attack | safe Δ | unsafe Δ |", "|---|---|---|---|---|"]
            for (_, x, y, att), d in paired_by_attack(pairs).items():
                cells = []
                for pl in ("safe", "unsafe"):
                    p = d.get(pl) or {}
                    cells.append("–" if p.get("diff") is None else
                                 f"{p['diff']:+.3f} [{p['ci'][0]:+.2f}, {p['ci'][1]:+.2f}] (n={p['n']})")
                out.append(f"| {x} | {y} | {att} | {cells[0]} | {cells[1]} |")
            out.append("")
    return out
