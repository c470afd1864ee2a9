"""`tbr data`: list, show, check and describe the data sets.

    tbr data list                  built-in sets with row counts; registered public sets
    tbr data show NAME [--n 5]     rows of a built-in set (or of a public source: xstest:/path.csv)
    tbr data check [--strict]      schema, counts, duplicates, train/eval overlap of the built-in sets
    tbr data card [--update FILE]  the count tables of DATA.md (printed, or written between markers)

`check` exits 0 when every check passes, 1 when one fails (naming the offending ids), 2 on bad
input. Warnings (trigger words in general prompts) fail only with --strict.
"""
from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from tbr.data import sources  # sources.BUILTIN_DIR read at call time: tests point it elsewhere
from tbr.data.dedup import NGRAM, THRESHOLD, duplicate_pairs
from tbr.data.public import load_public
from tbr.data.registry import PUBLIC
from tbr.data.schema import HARM_CATEGORIES, PROMPT_LABELS, XSTEST_TYPES
from tbr.data.sources import BUILTIN_FILES, builtin_rows
from tbr.errors import TbrError
from tbr.io import atomic_write_text
from tbr.judges.evaluation import cohen_kappa, to_binary
from tbr.suites import SUITES

# A training prompt that shares most of its wording with an evaluation prompt leaks that item
# even when reworded, so train/eval overlap uses a lower bar than duplicates within the data.
LEAK_THRESHOLD = 0.6
TRAIN_SETS = ("general", "safety", "benign-reflections")
EVAL_SETS = ("pseudo-harmful",)
EVAL_TYPES = XSTEST_TYPES + tuple(f"contrast_{t}" for t in XSTEST_TYPES)
JUDGE_LABELS = ("full_compliance", "full_refusal", "partial_refusal")
TRIGGER_TYPES = ("homonyms", "figurative_language", "safe_targets", "safe_contexts", "definitions")
MARK_BEGIN, MARK_END = "<!-- tbr data card: begin -->", "<!-- tbr data card: end -->"

Check = Callable[[Any], str | None]  # value -> problem (None when fine)


def _nonempty(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else f"expected a non-empty string, got {json.dumps(v)[:40]}"


def _one_of(allowed: Sequence[str]) -> Check:
    def check(v: Any) -> str | None:
        return None if v in allowed else f"expected one of {', '.join(allowed)}, got {json.dumps(v)[:40]}"
    return check


# per built-in set: the field holding its text, and a check per required field
SPECS: dict[str, tuple[str, dict[str, Check]]] = {
    "general": ("prompt", {"id": _nonempty, "prompt": _nonempty, "response": _nonempty, "category": _nonempty}),
    "safety": ("prompt", {"id": _nonempty, "prompt": _nonempty, "response": _nonempty, "reflection": _nonempty,
                          "category": _one_of(HARM_CATEGORIES)}),
    "pseudo-harmful": ("prompt", {"id": _nonempty, "prompt": _nonempty, "label": _one_of(PROMPT_LABELS),
                                  "type": _one_of(EVAL_TYPES), "focus": _nonempty}),
    "judge-bench": ("prompt", {"id": _nonempty, "prompt": _nonempty, "response": _nonempty,
                               "label": _one_of(JUDGE_LABELS), "prompt_label": _one_of(PROMPT_LABELS),
                               "source": _one_of(("project", "written")), "model": _nonempty,
                               "family": _nonempty, "split": _one_of(("train", "test"))}),
    "judge-adversarial": ("prompt", {"prompt": _nonempty, "response": _nonempty, "label": _one_of(JUDGE_LABELS)}),
    "judge-train": ("prompt", {"id": _nonempty, "prompt": _nonempty, "response": _nonempty,
                               "label": _one_of(JUDGE_LABELS)}),
    "reflection-exemplars": ("instruction", {"id": _nonempty, "instruction": _nonempty, "explain": _nonempty}),
    "benign-reflections": ("prompt", {"id": _nonempty, "prompt": _nonempty, "reflection": _nonempty,
                                      "response": _nonempty, "type": _one_of(XSTEST_TYPES)}),
}
# how each set is counted in the tables: (row field, column field or None)
COUNTS = {"general": ("category", None), "safety": ("category", None), "benign-reflections": ("type", None),
          "pseudo-harmful": ("type", "label"),
          "judge-bench": ("family", "label"), "judge-adversarial": ("phenomenon", "label"), "judge-train": ("phenomenon", "label")}
JUDGE_SETS = ("judge-bench", "judge-adversarial", "judge-train")  # one prompt, several responses: compared as whole rows


@dataclass
class Problem:
    check: str
    message: str
    ids: list[str] = field(default_factory=list)
    warning: bool = False


@dataclass
class Loaded:
    rows: dict[str, list[dict[str, Any]]]        # set -> rows (with "_where": file:line)
    missing: list[tuple[str, str]]               # (set, file)
    problems: list[Problem]


def load_builtin_checked() -> Loaded:
    """Every built-in file read row by row; schema problems collected, not raised."""
    rows: dict[str, list[dict[str, Any]]] = {}
    missing: list[tuple[str, str]] = []
    problems: list[Problem] = []
    for name, files in BUILTIN_FILES.items():
        _, spec = SPECS[name]
        rows[name] = []
        seen: dict[str, str] = {}
        for fname in files:
            p = sources.BUILTIN_DIR / fname
            if not p.exists():
                missing.append((name, fname))
                continue
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
                where = f"{fname}:{n}"
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    problems.append(Problem("schema", f"{where}: not valid JSON ({e.msg})"))
                    continue
                if not isinstance(r, dict):
                    problems.append(Problem("schema", f"{where}: expected a JSON object"))
                    continue
                bad = [f"field '{f}': {msg}" for f, ok in spec.items() if (msg := ok(r.get(f)))]
                if name == "pseudo-harmful" and not bad and \
                        (r["label"] == "unsafe") != r["type"].startswith("contrast_"):
                    bad.append(f"field 'label': {r['label']} does not fit type {r['type']} "
                               "(unsafe exactly for contrast_* types)")
                rid = str(r.get("id", f"{p.stem}:{n}"))
                if rid in seen:
                    bad.append(f"field 'id': duplicate id {rid!r} (first at {seen[rid]})")
                seen.setdefault(rid, where)
                for b in bad:
                    problems.append(Problem("schema", f"{where}: {b}", [rid]))
                rows[name].append({**r, "id": rid, "_where": where})
    return Loaded(rows, missing, problems)


def _designed_pair(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """A safe prompt and its unsafe contrast are minimal pairs by design (XSTest's method)."""
    return (a["_set"] == b["_set"] == "pseudo-harmful" and a.get("label") != b.get("label")
            and (str(a.get("focus", "")).lower() == str(b.get("focus", "")).lower()
                 or a.get("type", "").removeprefix("contrast_") == b.get("type", "").removeprefix("contrast_")))


def duplicate_problems(rows: dict[str, list[dict[str, Any]]]) -> list[Problem]:
    """Exact/near duplicate prompts within and across sets, and train/eval overlap."""
    items = [{**r, "_set": name, "_text": r.get(SPECS[name][0]) or ""}
             for name, rs in rows.items() if name not in JUDGE_SETS for r in rs]
    out: list[Problem] = []
    for p in duplicate_pairs([r["_text"] for r in items], threshold=LEAK_THRESHOLD):
        a, b = items[p.i], items[p.j]
        sets = {a["_set"], b["_set"]}
        leak = bool(sets & set(TRAIN_SETS)) and bool(sets & set(EVAL_SETS))
        if (not leak and p.similarity < THRESHOLD) or _designed_pair(a, b):
            continue
        check = "train/eval overlap" if leak else f"{p.kind} duplicate"
        scope = "within " + a["_set"] if len(sets) == 1 else "across " + " and ".join(sorted(sets))
        out.append(Problem(check, f"{a['id']} ~ {b['id']} ({scope}, similarity {p.similarity:.2f}): "
                                  f"{a['_text'][:70]!r} / {b['_text'][:70]!r}", [a["id"], b["id"]]))
    # judge-adversarial rows may share prompts (one prompt, several responses): compare whole rows
    jl = [{**r, "_set": n} for n in JUDGE_SETS for r in rows.get(n, [])]
    for p in duplicate_pairs([f"{r.get('prompt')}\n{r.get('response')}" for r in jl], threshold=1.0):
        a, b = jl[p.i], jl[p.j]
        scope = f"within {a['_set']}" if a["_set"] == b["_set"] else f"across {a['_set']} and {b['_set']}"
        out.append(Problem("exact duplicate", f"{a['id']} = {b['id']} ({scope}: same prompt and response)",
                           [a["id"], b["id"]]))
    return out


def trigger_problems(rows: dict[str, list[dict[str, Any]]]) -> list[Problem]:
    """General prompts using a trigger word of the pseudo-harmful suite ('kill', 'shoot', ...):
    such prompts would teach the model the very distinction the suite measures."""
    # focus words of the word-driven types; the other types' focus is a group, place or person
    words = {str(r.get("focus")).lower() for r in rows.get("pseudo-harmful", [])
             if r.get("focus") and r.get("type") in TRIGGER_TYPES}
    if not words:
        return []
    pat = re.compile(r"\b(" + "|".join(sorted(map(re.escape, words), key=len, reverse=True)) + r")\b", re.I)
    out = []
    # benign look-alikes are sensitive-sounding by design, but not with the suite's own words:
    # those would train on the very items the built-in suite measures
    for name in ("general", "benign-reflections"):
        for r in rows.get(name, []):
            m = pat.search(str(r.get("prompt", "")))
            if m:
                out.append(Problem(f"trigger word in {name} prompt", f"{r['id']}: {m.group(0)!r} in "
                                   f"{str(r['prompt'])[:70]!r}", [r["id"]], warning=True))
    return out


def run_check(strict: bool = False) -> tuple[Loaded, list[Problem]]:
    loaded = load_builtin_checked()
    problems = [Problem("missing", f"built-in set {s!r}: {f} not found", [f]) for s, f in loaded.missing]
    problems += loaded.problems + duplicate_problems(loaded.rows) + trigger_problems(loaded.rows)
    if strict:
        for p in problems:
            p.warning = False
    return loaded, problems


# ---- tables -------------------------------------------------------------------------------------

def md_table(header: Sequence[str], body: Iterable[Sequence[Any]]) -> str:
    rows = [list(map(str, header))] + [list(map(str, r)) for r in body]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    fmt = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([fmt(rows[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, rows[1:])])


def count_tables(rows: dict[str, list[dict[str, Any]]]) -> str:
    parts = ["Rows per built-in set:\n", md_table(
        ["set", "files", "rows"],
        [[n, ", ".join(fs), len(rows.get(n, []))] for n, fs in BUILTIN_FILES.items()])]
    for name, (key, col) in COUNTS.items():
        rs = rows.get(name, [])
        if not rs:
            continue
        if col is None:
            c = Counter(str(r.get(key)) for r in rs)
            parts += [f"\n`{name}` by {key}:\n", md_table([key, "rows"], [*sorted(c.items()), ["total", len(rs)]])]
        else:
            cols = sorted({str(r.get(col)) for r in rs})
            base = lambda t: t.removeprefix("contrast_")  # noqa: E731
            keys = sorted({base(str(r.get(key))) for r in rs})
            c2 = Counter((base(str(r.get(key))), str(r.get(col))) for r in rs)
            body = [[k, *[c2[(k, v)] for v in cols], sum(c2[(k, v)] for v in cols)] for k in keys]
            body.append(["total", *[sum(c2[(k, v)] for k in keys) for v in cols], len(rs)])
            parts += [f"\n`{name}` by {key} ({'unsafe rows are the contrast_<type> prompts' if name == 'pseudo-harmful' else ''}) "
                      f"and {col}:\n".replace(" ()", ""), md_table([key, *cols, "total"], body)]
    if rows.get("judge-bench"):
        parts.append(bench_tables(rows["judge-bench"]))
    return "\n".join(parts) + "\n"


def bench_tables(rs: list[dict[str, Any]]) -> str:
    """judge-bench: rows per source model and split, and how far the two annotators agreed."""
    c = Counter((str(r.get("model")), str(r.get("split"))) for r in rs)
    models = sorted({m for m, _ in c})
    body = [[m, c[(m, "train")], c[(m, "test")], c[(m, "train")] + c[(m, "test")]] for m in models]
    body.append(["total", sum(c[(m, "train")] for m in models), sum(c[(m, "test")] for m in models), len(rs)])
    out = ["\n`judge-bench` by source model and split:\n", md_table(["model", "train", "test", "total"], body)]
    both = [r for r in rs if r.get("annotator_a") in JUDGE_LABELS and r.get("annotator_b") in JUDGE_LABELS]
    if both:
        a, b = [r["annotator_a"] for r in both], [r["annotator_b"] for r in both]
        # a and b are JUDGE_LABELS (filtered above), so to_binary never returns None for them
        ab, bb = cast(list[str], [to_binary(x) for x in a]), cast(list[str], [to_binary(x) for x in b])
        agree3 = sum(x == y for x, y in zip(a, b)) / len(both)
        agree2 = sum(x == y for x, y in zip(ab, bb)) / len(both)
        k3, k2 = cohen_kappa(a, b), cohen_kappa(ab, bb)
        rows_ = [["3-class", len(both), f"{agree3:.3f}", f"{k3:.3f}" if k3 is not None else "n/a"],
                 ["binary (refusal vs compliance)", len(both), f"{agree2:.3f}", f"{k2:.3f}" if k2 is not None else "n/a"]]
        for src in sorted({str(r.get("source")) for r in both}):
            sub = [r for r in both if str(r.get("source")) == src]
            k = cohen_kappa([r["annotator_a"] for r in sub], [r["annotator_b"] for r in sub])
            rows_.append([f"3-class, {src} rows", len(sub),
                          f"{sum(r['annotator_a'] == r['annotator_b'] for r in sub) / len(sub):.3f}",
                          f"{k:.3f}" if k is not None else "n/a"])
        out += ["\n`judge-bench` annotator agreement on the rows kept (two independent annotators per row; "
                f"{sum(bool(r.get('adjudicated')) for r in rs)} disagreements adjudicated by a third; disagreements "
                "left unadjudicated are not in the set, see the text above):\n",
                md_table(["labels", "rows", "agreement", "Cohen's kappa"], rows_)]
    return "\n".join(out)


# ---- commands -----------------------------------------------------------------------------------

def _list() -> int:
    loaded = load_builtin_checked()
    print("Built-in sets (in the package):")
    print(md_table(["name", "rows", "files"], [
        [n, len(loaded.rows[n]), ", ".join(f + ("" if (sources.BUILTIN_DIR / f).exists() else " (missing)") for f in fs)]
        for n, fs in BUILTIN_FILES.items()]))
    print("\nPublic sets (loaded at run time from the hub, or NAME:/path/to/file):")
    print(md_table(["name", "kind", "hub", "files", "licence"], [
        [s.name, s.kind, s.hub_ids, " ".join(s.formats), s.licence] for s in PUBLIC.values()]))
    print("\nEvaluation suites (data.eval):")
    print(md_table(["suite", "judge", "offline judge", "source"], [
        [s.name, s.default_judge, s.offline_judge, s.source or s.name] for s in SUITES.values()]))
    return 0


def _show(name: str, n: int) -> int:
    if n < 1:
        raise TbrError(f"--n: expected a positive number, got {n}")
    if name in BUILTIN_FILES:
        rows = builtin_rows(name)
        if not rows:
            raise TbrError(f"built-in set {name!r} has no rows (files missing: {', '.join(BUILTIN_FILES[name])})")
    else:
        rows = load_public(name)[1]
    for r in rows[:n]:
        print(json.dumps(r, ensure_ascii=False))
    print(f"({min(n, len(rows))} of {len(rows)} rows)")
    return 0


def _check(strict: bool) -> int:
    loaded, problems = run_check(strict)
    total = sum(len(r) for r in loaded.rows.values())
    print(f"tbr data check: {total} rows in {sum(bool(r) for r in loaded.rows.values())} built-in sets\n")
    print(count_tables(loaded.rows))
    checks = ["missing", "schema", "exact duplicate", "near duplicate", "train/eval overlap",
              "trigger word in general prompt"]
    notes = {"near duplicate": f"char {NGRAM}-gram Jaccard >= {THRESHOLD}",
             "train/eval overlap": f"general+safety+benign-reflections vs pseudo-harmful, exact or Jaccard >= {LEAK_THRESHOLD}"}
    failed = 0
    for c in checks:
        found = [p for p in problems if p.check == c]
        status = "PASS" if not found else ("WARN" if all(p.warning for p in found) else "FAIL")
        failed += status == "FAIL"
        print(f"{status}  {c}" + (f" ({notes[c]})" if c in notes else "") + (f": {len(found)}" if found else ""))
        for p in found[:50]:
            print(f"      {p.message}")
        if len(found) > 50:
            print(f"      ... and {len(found) - 50} more")
    print(f"\n{'FAIL' if failed else 'PASS'}: {failed} check(s) failed" + ("" if strict else " (warnings pass; --strict fails them)"))
    return 1 if failed else 0


def _card(update: str | None) -> int:
    loaded = load_builtin_checked()
    text = count_tables(loaded.rows)
    if update is None:
        print(text, end="")
        return 0
    p = Path(update)
    doc = p.read_text(encoding="utf-8") if p.exists() else ""
    if MARK_BEGIN not in doc or MARK_END not in doc:
        raise TbrError(f"expected the markers {MARK_BEGIN} and {MARK_END}", path=p)
    head, rest = doc.split(MARK_BEGIN, 1)
    tail = rest.split(MARK_END, 1)[1]
    atomic_write_text(p, f"{head}{MARK_BEGIN}\n{text}{MARK_END}{tail}")
    print(f"{p}: count tables updated")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.data_cmd == "list":
        return _list()
    if args.data_cmd == "show":
        return _show(args.name, args.n)
    if args.data_cmd == "check":
        return _check(args.strict)
    if args.data_cmd == "card":
        if args.update and Path(args.update).is_dir():
            raise TbrError("--update: expected a file, got a folder", path=args.update)
        return _card(args.update)
    raise TbrError(f"unknown data command {args.data_cmd!r}")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("data", help="list, show and check the built-in and public data sets")
    sub = p.add_subparsers(dest="data_cmd", required=True)
    sub.add_parser("list", help="built-in sets with row counts; registered public sets and suites")
    s = sub.add_parser("show", help="the first rows of a built-in set (or a public source, e.g. xstest:/path.csv)")
    s.add_argument("name")
    s.add_argument("--n", type=int, default=5, help="rows to show (default 5)")
    c = sub.add_parser("check", help="schema, counts, duplicates and train/eval overlap (exit 1 on a failure)")
    c.add_argument("--strict", action="store_true", help="warnings fail too")
    d = sub.add_parser("card", help="print the count tables of DATA.md")
    d.add_argument("--update", metavar="FILE", help="write them into FILE between the card markers")
    p.set_defaults(func=run)
