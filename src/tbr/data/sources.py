"""Where rows come from: the built-in sets shipped in the package, public sets (by hub id or a
local file in their published format), or any file with a column map.

Every loader returns records in the shared schema (tbr.data.schema) with stable ids.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tbr.data.public import load_public_training
from tbr.data.sampling import stratified_sample
from tbr.data.schema import EVAL_SCHEMA, HARM_CATEGORIES, check_nonempty, check_values
from tbr.errors import TbrError
from tbr.io import read_jsonl

BUILTIN_DIR = Path(__file__).parent / "builtin"
BUILTIN_FILES = {
    "general": ("general_a.jsonl", "general_b.jsonl"),
    "safety": ("safety.jsonl",),
    "pseudo-harmful": ("pseudo_harmful.jsonl",),
    "judge-bench": ("judge_bench.jsonl",),
    "judge-adversarial": ("judge_adversarial.jsonl",),
    "judge-train": ("judge_train.jsonl",),
    "reflection-exemplars": ("reflection_exemplars.jsonl",),
    "benign-reflections": ("benign_reflections.jsonl",),
}
BENIGN_SCHEMA = {"id": (str,), "prompt": (str,), "reflection": (str,), "response": (str,)}


def builtin_rows(name: str) -> list[dict[str, Any]]:
    if name not in BUILTIN_FILES:
        raise TbrError(f"unknown built-in set {name!r} (known: {', '.join(BUILTIN_FILES)})")
    rows: list[dict[str, Any]] = []
    for fname in BUILTIN_FILES[name]:
        p = BUILTIN_DIR / fname
        if p.exists():
            rows.extend(read_jsonl(p, unique_id=True))
    return rows


def benign_file(source: str) -> Path:
    """The file behind build.benign_source: the built-in set, or the user's JSONL."""
    if source == "builtin":
        return BUILTIN_DIR / BUILTIN_FILES["benign-reflections"][0]
    p = Path(source).expanduser()
    if not p.is_file():
        raise TbrError("build.benign_source: expected 'builtin' or a JSONL file (id, prompt, reflection, response)",
                       path=p)
    return p


def benign_rows(source: str) -> list[dict[str, Any]]:
    """Benign look-alike rows (id, prompt, reflection, response), checked field by field."""
    return read_jsonl(benign_file(source), BENIGN_SCHEMA, nonempty=("prompt", "reflection", "response"),
                      unique_id=True)


def _general_builtin() -> list[dict[str, Any]]:
    return [{"id": r["id"], "kind": "general", "prompt": r["prompt"], "response": r["response"],
             "reflection": None, "category": r.get("category"), "source": "builtin"}
            for r in builtin_rows("general")]


def _safety_builtin() -> list[dict[str, Any]]:
    # the hand-written reflection travels as `builtin_reflection`; which rows carry a
    # reflection in training is decided later, by the reflect and build stages
    return [{"id": r["id"], "kind": "safety", "prompt": r["prompt"], "response": r["response"],
             "reflection": None, "builtin_reflection": r.get("reflection"), "category": r["category"],
             "source": "builtin"} for r in builtin_rows("safety")]


def load_training(kind: str, source: str, limit: int | None, seed: int,
                  columns: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Training rows of `kind` ('general' or 'safety') from a source name or a file path."""
    if source == "builtin":
        rows = _general_builtin() if kind == "general" else _safety_builtin()
    else:
        rows = load_public_training(kind, source, columns or {})
    if not rows:
        raise TbrError(f"data.{kind}: source {source!r} gave no rows")
    where = f"data.{kind} ({source})"
    check_nonempty(rows, where, ("prompt", "response"))
    if kind == "safety" and source == "builtin":
        check_values(rows, "category", HARM_CATEGORIES, where)
    return stratified_sample(rows, limit, key=lambda r: r.get("category") or "", seed=seed)


def builtin_eval() -> list[dict[str, Any]]:
    rows = []
    for r in builtin_rows("pseudo-harmful"):
        rows.append({"id": f"builtin:{r['id']}", "suite": "builtin", "prompt": r["prompt"],
                     "label": r["label"], "type": r["type"], "focus": r.get("focus")})
    return rows


def reflection_exemplars() -> list[dict[str, str]]:
    rows = builtin_rows("reflection-exemplars")
    if len(rows) < 1:
        raise TbrError("no reflection exemplars found in the package")
    return rows[:5]


__all__ = ["load_training", "builtin_rows", "builtin_eval", "reflection_exemplars", "EVAL_SCHEMA"]
