"""Where review rows come from: a run folder, or any judged JSONL file.

A review row is {model, mode, id, prompt, response, reflection, answer, prompt_label, verdicts},
with verdicts = {judge: label} for every judge that labelled it.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tbr.data.public import read_rows
from tbr.errors import TbrError
from tbr.io import read_jsonl
from tbr.judges.evaluation import PRED_LABELS
from tbr.labels import folder_name
from tbr.review.store import CLASSES

PROMPT_LABELS = ("safe", "unsafe")


def run_metrics(root: Path) -> dict[str, Any]:
    p = Path(root) / "evaluate" / "metrics.json"
    if not p.is_file():
        if not Path(root).is_dir():
            raise TbrError("no such run folder", path=root)
        raise TbrError("no evaluate/metrics.json: finish the run (`tbr run`) before reviewing it", path=root)
    return json.loads(p.read_text(encoding="utf-8"))


def run_rows(root: Path) -> tuple[list[dict[str, Any]], str]:
    """Every judged answer of a run, with all its judges' verdicts; and the primary judge."""
    root = Path(root)
    m = run_metrics(root)
    prompts = {r["id"]: r for r in read_jsonl(root / "data" / "eval.jsonl")}
    out = []
    for model in sorted(m["models"]):
        per = {j: read_jsonl(root / "judge" / folder_name(model) / f"{j}.jsonl") for j in m["judges"]}
        keyed = {j: {(r["id"], r.get("mode", "plain")): r for r in rows} for j, rows in per.items()}
        for (id_, mode), r in keyed[m["primary_judge"]].items():
            p = prompts.get(id_)
            if p is None:
                raise TbrError(f"judgement for id {id_!r} has no evaluation prompt",
                               path=root / "judge" / folder_name(model))
            out.append({"model": model, "mode": mode, "id": id_, "prompt": r["prompt"], "response": r["response"],
                        "reflection": r.get("reflection"), "answer": r.get("answer", r["response"]),
                        "prompt_label": p["label"], "type": p.get("type"),
                        "verdicts": {j: k[(id_, mode)]["label"] for j, k in keyed.items() if (id_, mode) in k}})
    return out, m["primary_judge"]


def input_rows(path: Path, judge_field: str = "judge") -> tuple[list[dict[str, Any]], str]:
    """Rows of a judged JSONL (as `tbr judge` writes it, or any file with id, prompt, response,
    label and the prompt's safe/unsafe label in `prompt_label` or `input_label`); optional
    `model`, `mode` and `verdicts` ({judge: label}, other judges' labels of the same row)."""
    path = Path(path)
    rows = read_jsonl(path, schema={"id": (str, int), "prompt": (str,), "response": (str,), "label": (str,)},
                      unique_id=False)
    if not rows:
        raise TbrError("no rows", path=path)
    out, seen = [], set()
    primary = str(rows[0].get(judge_field) or "judge")
    for n, r in enumerate(rows, 1):
        pl = r.get("prompt_label", r.get("input_label"))
        if pl not in PROMPT_LABELS:
            raise TbrError(f"expected 'safe' or 'unsafe' in prompt_label (or input_label), got {json.dumps(pl)}",
                           path=path, line=n, field="prompt_label")
        if r["label"] not in (*PRED_LABELS, "truncated"):
            raise TbrError(f"expected one of {', '.join((*PRED_LABELS, 'truncated'))}, got {json.dumps(r['label'])}",
                           path=path, line=n, field="label")
        key = (str(r.get("model", "model")), str(r.get("mode", "plain")), str(r["id"]))
        if key in seen:
            raise TbrError(f"duplicate row for model {key[0]!r}, mode {key[1]!r}, id {key[2]!r}",
                           path=path, line=n, field="id")
        seen.add(key)
        verdicts = dict(r.get("verdicts") or {})
        verdicts[primary] = r["label"]
        out.append({"model": key[0], "mode": key[1], "id": key[2], "prompt": r["prompt"], "response": r["response"],
                    "reflection": r.get("reflection"), "answer": r.get("answer", r["response"]),
                    "prompt_label": pl, "type": r.get("type"), "verdicts": verdicts})
    return out, primary


def read_import(path: Path, rids: Sequence[str]) -> list[dict[str, Any]]:
    """Labels from a spreadsheet: CSV or JSONL with id (the sample's rid), label, optional
    reviewer and note. Every row is checked before any is kept."""
    path = Path(path)
    rows, lines = read_rows(path)
    known = set(rids)
    out = []
    for n, r in enumerate(rows, 1):
        line = lines[n - 1] if lines and n - 1 < len(lines) else n
        rid_ = str(r.get("id", "")).strip()
        if not rid_:
            raise TbrError("missing; expected the sample row's id", path=path, line=line, field="id")
        if rid_ not in known:
            raise TbrError(f"id {rid_!r} is not in this review sample", path=path, line=line, field="id")
        label = str(r.get("label", "")).strip()
        if label not in CLASSES:
            raise TbrError(f"expected one of {', '.join(CLASSES)}, got {json.dumps(label)}",
                           path=path, line=line, field="label")
        out.append({"rid": rid_, "label": label, "reviewer": str(r.get("reviewer") or "").strip(),
                    "note": str(r.get("note") or "")})
    return out
