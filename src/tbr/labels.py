"""Model labels, unique by construction.

A label is what a user would call a model: an explicit one (`--label NAME`, or
`models: [{path, label}]`) first; else, for a folder trained by tbr, its run and cell
(`demo/baseline`, read from the train stage's manifest beside it); else the folder's name,
with its parent in front when two folders share a name (`a/model`, `b/model`). Labels name
the stage folders a model's outputs go to, so two equal labels (or two that map to one folder
name) are an error before any work starts."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tbr.errors import TbrError


def folder_name(label: str) -> str:
    """The stage-folder name of a label."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)


def manifest_label(path: str | Path) -> str | None:
    """`run/cell` for a model folder that a tbr train stage wrote (<run>/train/<cell>/model)."""
    p = Path(path).expanduser()
    tdir = p.parent
    try:
        m = json.loads((tdir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or m.get("stage") != "train" or tdir.parent.name != "train":
        return None
    run = tdir.parent.parent
    cell = m.get("subject") if m.get("subject") not in (None, "run") else tdir.name
    return f"{run.name}/{cell}"


def _plain(path: str) -> str:
    p = Path(path).expanduser()
    return p.name if p.exists() else path.rstrip("/").split("/")[-1]


def model_labels(entries: Sequence[tuple[str, str | None]]) -> list[str]:
    """One label per (path, explicit label or None), in order; TbrError when two coincide."""
    labels: list[str | None] = [lab or manifest_label(path) for path, lab in entries]
    plain = [_plain(path) for path, _ in entries]
    unnamed = [lab is None for lab in labels]
    for i, (path, _) in enumerate(entries):
        if labels[i] is None:
            clash = sum(1 for j, q in enumerate(plain) if q == plain[i] and unnamed[j]) > 1
            parent = Path(path).expanduser().parent.name if Path(path).expanduser().exists() else ""
            labels[i] = f"{parent}/{plain[i]}" if clash and parent else plain[i]
    out = [str(x) for x in labels]
    check_unique(out, [p for p, _ in entries])
    return out


def check_unique(labels: Sequence[str], what: Sequence[str] | None = None) -> None:
    seen: dict[str, int] = {}
    for i, lab in enumerate(labels):
        key = folder_name(lab)
        if key in seen:
            j = seen[key]
            a = f"{what[j]!r} and {what[i]!r}" if what else f"{labels[j]!r} and {lab!r}"
            raise TbrError(f"two models would share the label {labels[j]!r}" + (f" ({a})" if what else "")
                           + ": give each its own with --label NAME (or models: [{path: ..., label: ...}])")
        seen[key] = i
