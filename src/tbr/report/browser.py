"""The data behind report.html's prompt browser: every prompt once, then one row per
(model, mode, prompt) with the response, its reflection and each judge's label."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tbr.io import read_jsonl
from tbr.labels import folder_name
from tbr.report.common import ordered_labels

MAX_RESPONSE_CHARS = 20000   # a runaway generation should not make the page unusable


def browser_data(root: Path, m: Mapping[str, Any]) -> dict[str, Any]:
    """Prompts once, then one row per (model, mode, prompt): response, reflection, each judge's label."""
    judges = list(m["judges"])
    models = ordered_labels(dict(m))
    ep = root / "data" / "eval.jsonl"
    prompts: list[dict[str, Any]] = []
    pidx: dict[str, int] = {}
    for r in (read_jsonl(ep) if ep.is_file() else []):
        pidx[str(r["id"])] = len(prompts)
        prompts.append({"id": str(r["id"]), "suite": r.get("suite", ""), "type": r.get("type", ""),
                        "label": r.get("label", ""), "prompt": r.get("prompt", ""), "focus": r.get("focus") or ""})
    rows: list[dict[str, Any]] = []
    for mi, lab in enumerate(models):
        labels: dict[str, dict[tuple[str, str], str]] = {}
        base: dict[tuple[str, str], dict[str, Any]] = {}
        for j in sorted(judges, key=lambda x: x != m["primary_judge"]):   # responses from the primary's file
            p = root / "judge" / folder_name(lab) / f"{j}.jsonl"
            if not p.is_file():
                continue
            labels[j] = {}
            for r in read_jsonl(p):
                k = (str(r["id"]), r.get("mode", "plain"))
                labels[j][k] = r.get("label", "")
                base.setdefault(k, r)
        if not base:   # judged nowhere: show the raw responses
            rp = root / "generate" / folder_name(lab) / "responses.jsonl"
            for r in (read_jsonl(rp) if rp.is_file() else []):
                base[(str(r["id"]), r.get("mode", "plain"))] = r
        for (pid, mode), r in base.items():
            if pid not in pidx:
                pidx[pid] = len(prompts)
                prompts.append({"id": pid, "suite": r.get("suite", ""), "type": "", "label": "",
                                "prompt": r.get("prompt", ""), "focus": ""})
            resp = str(r.get("response") or "")
            row = {"p": pidx[pid], "m": mi, "o": mode, "r": resp[:MAX_RESPONSE_CHARS],
                   "j": [labels.get(j, {}).get((pid, mode), "") for j in judges]}
            refl = r.get("reflection")
            if refl and isinstance(refl, str):
                row["f"] = refl[:MAX_RESPONSE_CHARS]
                ans = r.get("answer")
                row["a"] = str(ans if ans is not None else resp)[:MAX_RESPONSE_CHARS]
            rows.append(row)
    rows.sort(key=lambda x: (x["p"], x["m"], x["o"]))
    return {"primary": m["primary_judge"], "judges": judges, "models": models, "modes": list(m["modes"]),
            "prompts": prompts, "rows": rows}






