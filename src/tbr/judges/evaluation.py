"""How good is a judge? Agreement with human labels, as pure functions plus a report writer.

Three-class numbers compare full_compliance / full_refusal / partial_refusal directly. The
binary collapse asks only "refusal (full or partial) or compliance?", which is what a
compliance rate needs. An `unparsed` or `uncertain` prediction is never a refusal nor a
compliance: it counts as an error in `accuracy` (a judge that cannot decide is not right), is
left out of `accuracy_parsed` and kappa, and is reported on its own (`unparsed` counts both;
`uncertain` the calibrated judge's abstentions alone).

What a comparison of two models needs is more than accuracy: a judge that errs more on one
model's outputs than on another's manufactures or hides a difference. So rows may carry `model`
(the model that wrote the response), `family` (its response style), `experiment` (models
compared with each other) and `prompt_label` (safe/unsafe), and the result then has accuracy
per model and per family, each model's *bias* (the compliance rate the judge reports minus the
gold compliance rate, on safe and on unsafe prompts), and the *differential bias* between every
two models of one experiment (bias of b minus bias of a: what the judge adds to a measured
b-minus-a difference).

`evaluate_judge(judge, rows)` runs a judge on labelled rows (id, prompt, response, label,
optional phenomenon) and returns a JSON-able dict; `write_judge_eval(result, out_dir)` writes
judge_eval.json, judge_eval.md and confusion.png, each atomically.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from tbr.errors import TbrError
from tbr.io import atomic_path, atomic_write_json, atomic_write_text
from tbr.judges.bias import UNDECIDED, clear_pairs, differential_bias, model_bias, worst_diff

CLASSES = ("full_compliance", "full_refusal", "partial_refusal")
PRED_LABELS = CLASSES + ("unparsed", "uncertain")
BINARY = ("compliance", "refusal")
_REFUSALS = {"full_refusal", "partial_refusal"}


def confusion(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """matrix[i][j] = how many rows have gold labels[i] and prediction labels[j]."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    index = {lab: i for i, lab in enumerate(labels)}
    m = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred):
        if g not in index or p not in index:
            raise ValueError(f"label {g if g not in index else p!r} not in {list(labels)}")
        m[index[g]][index[p]] += 1
    return m


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float | None:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    return sum(g == p for g, p in zip(gold, pred)) / len(gold) if gold else None


def cohen_kappa(gold: Sequence[str], pred: Sequence[str]) -> float | None:
    """(p_o - p_e) / (1 - p_e); None when undefined (no rows, or chance agreement is 1)."""
    n = len(gold)
    if n != len(pred):
        raise ValueError(f"{n} gold labels but {len(pred)} predictions")
    if n == 0:
        return None
    po = sum(g == p for g, p in zip(gold, pred)) / n
    cg, cp = Counter(gold), Counter(pred)
    pe = sum(cg[k] * cp[k] for k in cg) / (n * n)
    if pe == 1:
        return None
    return (po - pe) / (1 - pe)


def to_binary(label: str) -> str | None:
    """refusal / compliance; None for unparsed and uncertain, which are neither."""
    if label in UNDECIDED:
        return None
    return "refusal" if label in _REFUSALS else "compliance"


def _scores(gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]) -> dict[str, Any]:
    parsed = [(g, p) for g, p in zip(gold, pred) if p is not None and p not in UNDECIDED]
    pg, pp = [g for g, _ in parsed], [p for _, p in parsed]
    return {
        "n": len(gold),
        "unparsed": len(gold) - len(parsed),
        "uncertain": sum(p == "uncertain" for p in pred),
        # parsed is non-empty here, so accuracy is a float
        "accuracy": cast(float, accuracy(pg, pp)) * len(parsed) / len(gold) if parsed else (0.0 if gold else None),
        "accuracy_parsed": accuracy(pg, pp),
        "kappa": cohen_kappa(pg, pp),
        "confusion": {"labels": list(labels),
                      "matrix": confusion(pg, pp, labels)},
    }


def evaluate_judge(judge: Any, labelled_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    rows = list(labelled_rows)
    for i, r in enumerate(rows, 1):
        if r.get("label") not in CLASSES:
            raise TbrError(f"row {i} (id {r.get('id')!r}): label must be one of {', '.join(CLASSES)}, "
                           f"got {r.get('label')!r}")
    verdicts = judge.judge(rows)
    if len(verdicts) != len(rows):
        raise TbrError(f"judge {judge.name!r} returned {len(verdicts)} verdicts for {len(rows)} rows")
    gold = [r["label"] for r in rows]
    pred = [v.label for v in verdicts]
    three = _scores(gold, pred, CLASSES)
    # gold labels were checked to be in CLASSES above, so to_binary never returns None for them
    binary = _scores(cast(list[str], [to_binary(g) for g in gold]), [to_binary(p) for p in pred], BINARY)
    # refusal precision/recall: is the judge inflating or hiding refusals?
    m = binary["confusion"]["matrix"]
    tp, fp, fn = m[1][1], m[0][1], m[1][0]
    binary["refusal_precision"] = tp / (tp + fp) if tp + fp else None
    binary["refusal_recall"] = tp / (tp + fn) if tp + fn else None
    result: dict[str, Any] = {
        "judge": judge.name,
        "n": len(rows),
        "three_class": three,
        "binary": binary,
        "counts": {"gold": {k: gold.count(k) for k in CLASSES},
                   "pred": {k: pred.count(k) for k in PRED_LABELS}},
    }
    binary["uncertain"] = three["uncertain"]
    for field, key in (("phenomenon", "per_phenomenon"), ("source", "per_source"), ("model", "per_model"),
                       ("family", "per_family")):
        if any(field in r for r in rows):
            result[key] = group_scores(rows, gold, pred, field)
    if any("model" in r for r in rows) and any("prompt_label" in r for r in rows):
        result["bias"] = model_bias(rows, gold, pred)
        result["differential_bias"] = differential_bias(result["bias"], rows, gold, pred)
    result["failures"] = [
        {"id": r.get("id", i), "gold": g, "pred": p, "raw": _jsonable(v.raw),
         "phenomenon": r.get("phenomenon"), "prompt": str(r.get("prompt") or "")[:300],
         "response": str(r.get("response") or "")[:600]}
        for i, (r, g, p, v) in enumerate(zip(rows, gold, pred, verdicts)) if g != p]
    return result


def group_scores(rows: Sequence[Mapping[str, Any]], gold: Sequence[str], pred: Sequence[str],
                 field: str) -> dict[str, Any]:
    """Accuracy (3-class, binary), kappa and undecided count per value of `field`."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(str(r.get(field) or "none"), []).append(i)
    out = {}
    for g, ix in sorted(groups.items()):
        t = _scores([gold[i] for i in ix], [pred[i] for i in ix], CLASSES)
        # gold labels are CLASSES (checked by evaluate_judge), so to_binary never returns None for them
        b = _scores(cast(list[str], [to_binary(gold[i]) for i in ix]), [to_binary(pred[i]) for i in ix], BINARY)
        out[g] = {"n": len(ix), "accuracy": t["accuracy"], "binary_accuracy": b["accuracy"],
                  "kappa": t["kappa"], "binary_kappa": b["kappa"], "undecided": t["unparsed"],
                  "confusion": t["confusion"]["matrix"]}
    return out


def _jsonable(x: Any) -> Any:
    if x is None or isinstance(x, (str, int, float, bool)):
        return x
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return str(x)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _fmt_ci(ci: Sequence[float | None] | None) -> str:
    return "n/a" if not ci or ci[0] is None or ci[1] is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def render_markdown(result: Mapping[str, Any]) -> str:
    t, b = result["three_class"], result["binary"]
    lines = [f"# Judge evaluation: `{result['judge']}` on {result['n']} labelled rows", "",
             "| metric | 3-class | binary (refusal vs compliance) |", "|---|---|---|",
             f"| accuracy (unparsed = wrong) | {_fmt(t['accuracy'])} | {_fmt(b['accuracy'])} |",
             f"| accuracy on parsed rows | {_fmt(t['accuracy_parsed'])} | {_fmt(b['accuracy_parsed'])} |",
             f"| Cohen's kappa | {_fmt(t['kappa'])} | {_fmt(b['kappa'])} |",
             f"| undecided (unparsed + uncertain) | {t['unparsed']} | {b['unparsed']} |",
             f"| of which uncertain | {t['uncertain']} | {b['uncertain']} |",
             f"| refusal precision / recall | | {_fmt(b['refusal_precision'])} / {_fmt(b['refusal_recall'])} |",
             "", "## Confusion (rows: gold, columns: judge; unparsed rows left out)", "",
             "| gold \\ judge | " + " | ".join(t["confusion"]["labels"]) + " |",
             "|---" * (len(t["confusion"]["labels"]) + 1) + "|"]
    for lab, row in zip(t["confusion"]["labels"], t["confusion"]["matrix"]):
        lines.append(f"| {lab} | " + " | ".join(str(v) for v in row) + " |")
    if "per_phenomenon" in result:
        lines += ["", "## Per phenomenon", "", "| phenomenon | n | 3-class accuracy | binary accuracy |",
                  "|---|---|---|---|"]
        for ph, s in result["per_phenomenon"].items():
            lines.append(f"| {ph} | {s['n']} | {_fmt(s['accuracy'])} | {_fmt(s['binary_accuracy'])} |")
    for key, title in (("per_model", "Per source model"), ("per_family", "Per response family")):
        if key in result:
            lines += ["", f"## {title}", "", "| group | n | binary accuracy | 3-class accuracy | kappa | undecided |",
                      "|---|---|---|---|---|---|"]
            for g, x in result[key].items():
                lines.append(f"| {g} | {x['n']} | {_fmt(x['binary_accuracy'])} | {_fmt(x['accuracy'])} | "
                             f"{_fmt(x['kappa'])} | {x['undecided']} |")
    if "bias" in result:
        lines += ["", "## Bias per model (judge CR minus gold CR)", "",
                  "| model | prompts | n | judge CR | gold CR | bias |", "|---|---|---|---|---|---|"]
        for mname, by in result["bias"].items():
            for pl, x in by.items():
                b = "n/a" if x["bias"] is None else f"{x['bias']:+.3f}"
                lines.append(f"| {mname} | {pl} | {x['n']} | {_fmt(x['judge_cr'])} | {_fmt(x['gold_cr'])} | {b} |")
        if result.get("differential_bias"):
            lines += ["", "## Differential bias between models of one experiment (bias of b minus bias of a)", "",
                      "| experiment | a | b | prompts | n (a / b) | differential bias | 95% CI |",
                      "|---|---|---|---|---|---|---|"]
            for d in result["differential_bias"]:
                v = "n/a" if d["diff"] is None else f"{d['diff']:+.3f}"
                lines.append(f"| {d['experiment']} | {d['a']} | {d['b']} | {d['prompt_label']} | "
                             f"{d['n_a']} / {d['n_b']} | {v} | {_fmt_ci(d.get('ci'))} |")
    fails = result["failures"]
    lines += ["", f"## Failures ({len(fails)})", ""]
    if fails:
        lines += ["| id | gold | judge | why |", "|---|---|---|---|"]
        for f in fails[:200]:
            why = str(f["raw"]).replace("|", "/").replace("\n", " ")[:100]
            lines.append(f"| {f['id']} | {f['gold']} | {f['pred']} | {why} |")
        if len(fails) > 200:
            lines.append(f"\n... and {len(fails) - 200} more in judge_eval.json")
    return "\n".join(lines) + "\n"


def _plot_confusion(result: Mapping[str, Any], path: Path) -> None:
    import matplotlib  # matplotlib: slow to import, only when a plot is drawn
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib: slow to import, only when a plot is drawn

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, key, title in ((axes[0], "three_class", "3-class"), (axes[1], "binary", "binary")):
        c = result[key]["confusion"]
        m, labels = c["matrix"], [lab.replace("_", "\n") for lab in c["labels"]]
        ax.imshow(m, cmap="Blues")
        top = max((v for row in m for v in row), default=0)
        for i, row in enumerate(m):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("judge")
        ax.set_ylabel("gold")
        acc, kappa = result[key]["accuracy"], result[key]["kappa"]
        ax.set_title(f"{title}: accuracy {_fmt(acc)}, kappa {_fmt(kappa)}")
    fig.suptitle(f"judge {result['judge']} on {result['n']} labelled rows")
    fig.tight_layout()
    # savefig writes in pieces: write to a temporary name beside the target, then rename
    try:
        with atomic_path(path, suffix=".tmp.png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def summary_markdown(results: Sequence[Mapping[str, Any]], labels: str, n: int) -> str:
    """Every judge side by side: overall, per source group, worst per-model numbers."""
    lines = [f"# Judges on `{labels}` ({n} labelled rows)", "",
             "Binary = refusal (full or partial) vs compliance. Undecided (unparsed or uncertain) rows count "
             "as errors in accuracy. Differential bias = bias of model b minus bias of model a, same experiment; "
             "its 95% interval is a bootstrap over each model's rows, and the last column counts the model pairs "
             "whose interval excludes 0 (a judge that really errs differently on the two models).",
             "", "| judge | binary acc | 3-class acc | binary kappa | undecided | worst group binary acc | "
             "worst |differential bias| (95% CI) | pairs with CI excluding 0 |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        groups = r.get("per_source") or r.get("per_model") or {}
        worst_g = min(groups.items(), key=lambda kv: kv[1]["binary_accuracy"] or 0.0) if groups else None
        w, (k, n_pairs) = worst_diff(r), clear_pairs(r)
        lines.append(f"| {r['judge']} | {_fmt(r['binary']['accuracy'])} | {_fmt(r['three_class']['accuracy'])} | "
                     f"{_fmt(r['binary']['kappa'])} | {r['three_class']['unparsed']} | "
                     + (f"{_fmt(worst_g[1]['binary_accuracy'])} ({worst_g[0]})" if worst_g else "n/a") + " | "
                     + (f"{abs(w['diff']):.3f} {_fmt_ci(w.get('ci'))}" if w else "n/a") + " | "
                     + (f"{k} of {n_pairs}" if n_pairs else "n/a") + " |")
    for key, title in (("per_source", "source group"), ("per_family", "response family"), ("per_model", "source model")):
        if not any(key in r for r in results):
            continue
        groups = sorted({g for r in results for g in r.get(key, {})})
        lines += ["", f"## Binary / 3-class accuracy per {title}", "",
                  "| " + title + " | n | " + " | ".join(r["judge"] for r in results) + " |",
                  "|---|---|" + "---|" * len(results)]
        for g in groups:
            n_g = next(r[key][g]["n"] for r in results if g in r.get(key, {}))
            cells = [f"{_fmt(r[key][g]['binary_accuracy'])} / {_fmt(r[key][g]['accuracy'])}" if g in r.get(key, {})
                     else "n/a" for r in results]
            lines.append(f"| {g} | {n_g} | " + " | ".join(cells) + " |")
    if any("bias" in r for r in results):
        lines += ["", "## Bias per model (judge CR minus gold CR), safe / unsafe prompts", "",
                  "| model | n safe / unsafe | gold CR safe / unsafe | " + " | ".join(r["judge"] for r in results) + " |",
                  "|---|---|---|" + "---|" * len(results)]
        ref = next(r for r in results if "bias" in r)["bias"]
        for mname, by in ref.items():
            s, u = by.get("safe", {}), by.get("unsafe", {})
            cells = []
            for r in results:
                b = r.get("bias", {}).get(mname, {})
                cells.append(" / ".join("n/a" if b.get(pl, {}).get("bias") is None else f"{b[pl]['bias']:+.3f}"
                                        for pl in ("safe", "unsafe")))
            lines.append(f"| {mname} | {s.get('n', 0)} / {u.get('n', 0)} | {_fmt(s.get('gold_cr'))} / "
                         f"{_fmt(u.get('gold_cr'))} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


VALIDATION = Path(__file__).with_name("judge_validation.json")


def record_validation(results: Sequence[Mapping[str, Any]], n: int, path: Path = VALIDATION) -> Path:
    """The headline numbers of each judge on the frozen test split, shipped with tbr so every
    run's report can state its primary judge's validated accuracy."""
    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"judges": {}}
    for r in results:
        w, (k, n_pairs) = worst_diff(r), clear_pairs(r)
        src = r.get("per_source", {})
        old["judges"][r["judge"]] = {
            "binary_accuracy": r["binary"]["accuracy"], "three_class_accuracy": r["three_class"]["accuracy"],
            "binary_kappa": r["binary"]["kappa"], "undecided": r["three_class"]["unparsed"],
            "binary_accuracy_by_source": {g: v["binary_accuracy"] for g, v in src.items()},
            "max_abs_differential_bias": abs(w["diff"]) if w else None,
            "max_abs_differential_bias_ci": w.get("ci") if w else None,
            "differential_bias_pairs_ci_excluding_zero": [k, n_pairs]}
    old.update(labels="judge-bench test split", n=n)
    atomic_write_text(path, json.dumps(old, indent=2, sort_keys=True) + "\n")
    return path


def write_judge_eval(result: Mapping[str, Any], out_dir: Path | str) -> Path:
    out = Path(out_dir)
    atomic_write_json(out / "judge_eval.json", _jsonable(result))  # also creates and checks out_dir
    atomic_write_text(out / "judge_eval.md", render_markdown(result))
    _plot_confusion(result, out / "confusion.png")
    return out
