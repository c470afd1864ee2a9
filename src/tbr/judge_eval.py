"""How good is a judge? Agreement with human labels, as pure functions plus a report writer.

Three-class numbers compare full_compliance / full_refusal / partial_refusal directly. The
binary collapse asks only "refusal (full or partial) or compliance?", which is what a
compliance rate needs. An `unparsed` prediction is never a refusal nor a compliance: it counts
as an error in `accuracy` (a judge that cannot decide is not right), is left out of
`accuracy_parsed` and kappa, and is reported on its own as `unparsed`.

`evaluate_judge(judge, rows)` runs a judge on labelled rows (id, prompt, response, label,
optional phenomenon) and returns a JSON-able dict; `write_judge_eval(result, out_dir)` writes
judge_eval.json, judge_eval.md and confusion.png, each atomically.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from tbr.errors import TbrError
from tbr.io import atomic_write_json, atomic_write_text

CLASSES = ("full_compliance", "full_refusal", "partial_refusal")
PRED_LABELS = CLASSES + ("unparsed",)
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
    """refusal / compliance; None for unparsed, which is neither."""
    if label == "unparsed":
        return None
    return "refusal" if label in _REFUSALS else "compliance"


def _scores(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    parsed = [(g, p) for g, p in zip(gold, pred) if p is not None and p != "unparsed"]
    pg, pp = [g for g, _ in parsed], [p for _, p in parsed]
    return {
        "n": len(gold),
        "unparsed": len(gold) - len(parsed),
        "accuracy": accuracy(pg, pp) * len(parsed) / len(gold) if parsed else (0.0 if gold else None),
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
    binary = _scores([to_binary(g) for g in gold], [to_binary(p) for p in pred], BINARY)
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
    if any("phenomenon" in r for r in rows):
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault(str(r.get("phenomenon") or "none"), []).append(i)
        result["per_phenomenon"] = {
            ph: {"n": len(ix),
                 "accuracy": _scores([gold[i] for i in ix], [pred[i] for i in ix], CLASSES)["accuracy"],
                 "binary_accuracy": _scores([to_binary(gold[i]) for i in ix],
                                            [to_binary(pred[i]) for i in ix], BINARY)["accuracy"]}
            for ph, ix in sorted(groups.items())}
    result["failures"] = [
        {"id": r.get("id", i), "gold": g, "pred": p, "raw": _jsonable(v.raw),
         "phenomenon": r.get("phenomenon"), "prompt": str(r.get("prompt") or "")[:300],
         "response": str(r.get("response") or "")[:600]}
        for i, (r, g, p, v) in enumerate(zip(rows, gold, pred, verdicts)) if g != p]
    return result


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


def render_markdown(result: Mapping[str, Any]) -> str:
    t, b = result["three_class"], result["binary"]
    lines = [f"# Judge evaluation: `{result['judge']}` on {result['n']} labelled rows", "",
             "| metric | 3-class | binary (refusal vs compliance) |", "|---|---|---|",
             f"| accuracy (unparsed = wrong) | {_fmt(t['accuracy'])} | {_fmt(b['accuracy'])} |",
             f"| accuracy on parsed rows | {_fmt(t['accuracy_parsed'])} | {_fmt(b['accuracy_parsed'])} |",
             f"| Cohen's kappa | {_fmt(t['kappa'])} | {_fmt(b['kappa'])} |",
             f"| unparsed | {t['unparsed']} | {b['unparsed']} |",
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
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    from tbr.io import atomic_path
    try:
        with atomic_path(path, suffix=".tmp.png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def write_judge_eval(result: Mapping[str, Any], out_dir: Path | str) -> Path:
    out = Path(out_dir)
    atomic_write_json(out / "judge_eval.json", _jsonable(result))  # also creates and checks out_dir
    atomic_write_text(out / "judge_eval.md", render_markdown(result))
    _plot_confusion(result, out / "confusion.png")
    return out
