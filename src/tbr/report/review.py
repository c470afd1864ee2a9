"""The review section of report.md and report.html, from the `review` block that `tbr review`
writes (review/summary.json, merged into the run's metrics.json). Pure rendering: the numbers
are computed in tbr.review."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tbr.report.html_blocks import esc, section, table

CAPTION = ("Review-corrected compliance rate: the stratified estimate from the reviewed sample (each "
           "judge-verdict stratum's share of the run times the reviewed compliance rate inside it), with a 95% "
           "interval that accounts for the sampling fraction. The judge's raw rate is beside it.")


def _f(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _ci(ci: Any) -> str:
    return "" if not ci or ci[0] is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _sign(x: Any) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


def corrected_rows(r: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for model, by in r["corrected"].items():
        for pl, c in by.items():
            inside = {True: "inside", False: "**outside**", None: "n/a"}[c["raw_inside"]]
            rows.append([model, pl, f"{_f(c['raw'])} (n={c['raw_n']})", f"{_f(c['estimate'])}{_ci(c['ci'])}",
                         f"{c['n']} of {c['N']}", inside])
    return rows


def judge_rows(r: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for j, by in r["judges"].items():
        for model, s in by.items():
            rows.append([j, model, str(s["n"]), _f(s["binary"]["accuracy"]), _f(s["three_class"]["accuracy"]),
                         _f(s["binary"]["kappa"])])
    return rows


def diff_rows(r: Mapping[str, Any]) -> list[list[str]]:
    return [[f"{d['b']} - {d['a']}", d["prompt_label"], _sign(d["raw"]), f"{_sign(d['diff'])}{_ci(d['ci'])}"]
            for d in r["differences"]]


def agreement_line(r: Mapping[str, Any]) -> str:
    a = r["agreement"]
    who = ", ".join(f"{k} ({v})" for k, v in a["reviewers"].items()) or "nobody yet"
    pairs = "; ".join(f"{p['a']} vs {p['b']}: agreement {_f(p['agreement'])}, kappa {_f(p['kappa'])} (n={p['n']})"
                      for p in a["pairs"])
    return (f"{r['reviewed']} of {r['sampled']} sampled rows have a final label ({r['unresolved']} unresolved, "
            f"{r['disagreements']} reviewer disagreements). Reviewers: {who}." + (f" {pairs}." if pairs else ""))


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(x) + " |" for x in rows]


CORR_HEAD = ["model", "prompts", "judge's raw CR", "review-corrected CR [95%]", "reviewed", "raw in interval"]
JUDGE_HEAD = ["judge", "model", "reviewed", "binary acc", "3-class acc", "binary kappa"]
DIFF_HEAD = ["difference", "prompts", "judge's raw", "review-corrected [95%]"]


def review_markdown(r: Mapping[str, Any] | None) -> list[str]:
    if not r:
        return []
    out = ["## Human review of this run", "", agreement_line(r), "", r["verdict"], "", CAPTION, ""]
    out += _md_table(CORR_HEAD, corrected_rows(r)) + [""]
    if r["differences"]:
        out += ["Differences (b minus a) from independent stratified samples of the two models:", ""]
        out += _md_table(DIFF_HEAD, diff_rows(r)) + [""]
    out += [f"Each judge against the review (estimates for the whole run: reviewed rows weighted by their "
            f"stratum's size over its reviewed count; sample drawn with seed {r['seed']}, {r['per_stratum']} per "
            f"stratum, stratified by the `{r['primary_judge']}` judge's verdict):", ""]
    out += _md_table(JUDGE_HEAD, judge_rows(r)) + ["", "Rows and labels: `review/sample.jsonl`, `review/labels.jsonl`.", ""]
    return out


def review_html(r: Mapping[str, Any] | None) -> str:
    if not r:
        return ""
    def tab(head: list[str], rows: list[list[str]]) -> str:
        return table([esc(h) for h in head], [[esc(c).replace("**outside**", "<b>outside</b>") for c in x]
                                              for x in rows])
    body = (f"<p>{esc(r['verdict'])}</p>" + tab(CORR_HEAD, corrected_rows(r))
            + (tab(DIFF_HEAD, diff_rows(r)) if r["differences"] else "") + tab(JUDGE_HEAD, judge_rows(r)))
    return section("review", "Human review", body, esc(agreement_line(r) + " " + CAPTION))
