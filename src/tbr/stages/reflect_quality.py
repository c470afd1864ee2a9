"""A quality report for generated reflections (pure functions, no I/O).

Input rows have `prompt` and `reflection`; a missing, None or blank reflection counts as dropped.
Measured on the kept reflections:
- length in words (whitespace-separated): min, p25, median, p75, max, mean; percentiles
  interpolate linearly between closest ranks (numpy's default);
- share containing a refusal phrase: the paper's 22 phrases plus "I won't" and "I will not",
  case-sensitive, curly apostrophes folded (a reflection should reason, the refusal follows it);
- share repeating the harmful request verbatim: the reflection contains the whole prompt, or any
  8-word run of it, comparing lower-cased word tokens;
- ten examples, chosen by sha256 of the row id (or the prompt when there is no id), so the same
  prompts are shown for every source and every run.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tbr.io import text_sha256
from tbr.judges.keywords import PAPER_PHRASES, match_phrase

REFUSAL_PHRASES = tuple(PAPER_PHRASES) + ("I won't", "I will not")
SHINGLE = 8
N_EXAMPLES = 10

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'"})
_TOKEN = re.compile(r"\w+")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.translate(_QUOTES).lower())


def repeats_request(prompt: str, reflection: str, shingle: int = SHINGLE) -> bool:
    """Whether `reflection` contains the normalised `prompt`, or any `shingle`-word run of it."""
    p, r = _tokens(prompt), _tokens(reflection)
    if not p or not r:
        return False
    if f" {' '.join(p)} " in f" {' '.join(r)} ":
        return True
    if len(p) < shingle or len(r) < shingle:
        return False
    grams = {tuple(r[i:i + shingle]) for i in range(len(r) - shingle + 1)}
    return any(tuple(p[i:i + shingle]) in grams for i in range(len(p) - shingle + 1))


def refusal_phrase(reflection: str) -> str | None:
    return match_phrase(reflection, REFUSAL_PHRASES)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; `sorted_values` must be sorted, non-empty."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def _share(k: int, n: int) -> float | None:
    return k / n if n else None


def quality_report(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    rows = list(rows)
    n = len(rows)
    kept = []
    for i, row in enumerate(rows):
        refl = row.get("reflection")
        if isinstance(refl, str) and refl.strip():
            kept.append((i, row, refl.strip()))
    lengths = sorted(len(refl.split()) for _, _, refl in kept)
    phrases: Counter[str] = Counter()
    flagged = []
    n_phrase = n_repeat = 0
    for i, row, refl in kept:
        phrase = refusal_phrase(refl)
        rep = repeats_request(str(row.get("prompt") or ""), refl)
        if phrase:
            phrases[phrase] += 1
            n_phrase += 1
        n_repeat += rep
        flagged.append((i, row, refl, phrase, rep))

    def pick_key(item: tuple) -> tuple[str, int]:
        i, row = item[0], item[1]
        ident = str(row["id"]) if row.get("id") is not None else str(row.get("prompt") or "")
        return text_sha256(ident), i

    examples = [
        {"id": row.get("id"), "prompt": str(row.get("prompt") or ""), "reflection": refl,
         "refusal_phrase": phrase, "repeats_request": bool(rep)}
        for i, row, refl, phrase, rep in sorted(flagged, key=pick_key)[:N_EXAMPLES]
    ]
    words = None
    if lengths:
        words = {"min": lengths[0], "p25": percentile(lengths, 0.25),
                 "median": percentile(lengths, 0.5), "p75": percentile(lengths, 0.75),
                 "max": lengths[-1], "mean": sum(lengths) / len(lengths)}
    k = len(kept)
    return {
        "n": n,
        "kept": k,
        "dropped": n - k,
        "share_dropped": _share(n - k, n),
        "words": words,
        "with_refusal_phrase": n_phrase,
        "share_with_refusal_phrase": _share(n_phrase, k),
        "refusal_phrases": dict(sorted(phrases.items(), key=lambda kv: (-kv[1], kv[0]))),
        "repeats_request": n_repeat,
        "share_repeats_request": _share(n_repeat, k),
        "examples": examples,
    }


def _pct(count: int, share: float | None) -> str:
    return f"{count}" if share is None else f"{count} ({100 * share:.1f}%)"


def _num(x: float) -> str:
    return f"{x:g}" if float(x).is_integer() else f"{x:.1f}"


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def quality_markdown(report: Mapping[str, Any], source: str) -> str:
    """A markdown section for a report from `quality_report`."""
    lines = [f"### Reflection quality: {source}", "", "| measure | value |", "|---|---|",
             f"| rows | {report['n']} |",
             f"| dropped (no reflection) | {_pct(report['dropped'], report['share_dropped'])} |"]
    w = report.get("words")
    if w:
        lines.append("| words: min / p25 / median / p75 / max | "
                     + " / ".join(_num(w[k]) for k in ("min", "p25", "median", "p75", "max")) + " |")
        lines.append(f"| words: mean | {w['mean']:.1f} |")
    lines.append(f"| contains a refusal phrase | "
                 f"{_pct(report['with_refusal_phrase'], report['share_with_refusal_phrase'])} |")
    lines.append(f"| repeats the request verbatim (whole or {SHINGLE}-word run) | "
                 f"{_pct(report['repeats_request'], report['share_repeats_request'])} |")
    lines.append("")
    if report.get("refusal_phrases"):
        top = list(report["refusal_phrases"].items())[:5]
        lines.append("Most frequent refusal phrases: "
                     + ", ".join(f'"{p}" ({c})' for p, c in top) + ".")
        lines.append("")
    examples = report.get("examples") or []
    if examples:
        lines.append(f"Examples ({len(examples)}, chosen by a hash of the row id):")
        lines.append("")
        for j, ex in enumerate(examples, 1):
            flags = []
            if ex.get("refusal_phrase"):
                flags.append(f'refusal phrase "{ex["refusal_phrase"]}"')
            if ex.get("repeats_request"):
                flags.append("repeats the request")
            note = f" _({'; '.join(flags)})_" if flags else ""
            lines.append(f"{j}. **Prompt:** {_one_line(ex['prompt'], 200)}")
            lines.append(f"   **Reflection:** {_one_line(ex['reflection'], 500)}{note}")
        lines.append("")
    elif report["n"]:
        lines.append("No reflection was kept.")
        lines.append("")
    return "\n".join(lines)
