"""Labelling in the terminal, for SSH sessions: the same rows, keys and file as the served page.

Keys (then Enter): 1/2/3 label and advance, s skip, b back, n add a note to the next label,
q quit. Each label is on disk before the next row shows. The judges' verdicts are never shown.
"""
from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tbr.review.store import CLASSES, DEFINITIONS, append_label, by_reviewer, disagreements, latest, read_labels

KEYS = {"1": CLASSES[0], "2": CLASSES[1], "3": CLASSES[2]}


def _show(row: Mapping[str, Any], i: int, total: int, done: int, out: Callable[[str], None],
          others: Mapping[str, str] | None = None) -> None:
    wrap = lambda s: textwrap.fill(str(s), width=100, replace_whitespace=False)  # noqa: E731
    out("\n" + "=" * 100)
    out(f"row {i + 1} of {total}  ({done} of {total} labelled)  id {row['rid']}")
    out("-- prompt --\n" + wrap(row["prompt"]))
    if row.get("reflection"):
        out("-- reflection --\n" + wrap(row["reflection"]) + "\n-- answer --\n" + wrap(row.get("answer", "")))
    else:
        out("-- response --\n" + wrap(row["response"]))
    if others:
        out("-- reviewers said -- " + ", ".join(f"{k}: {v}" for k, v in sorted(others.items())))
    out("-- classes --")
    for k, c in KEYS.items():
        out(f" {k} {c}: {DEFINITIONS[c]}")
    out("[1/2/3] label  [s]kip  [b]ack  [n]ote  [q]uit")


def label_loop(folder: Path, rows: Sequence[Mapping[str, Any]], reviewer: str, adjudicate: bool = False,
               ask: Callable[[str], str] = input, out: Callable[[str], None] = print) -> int:
    """Walk the rows this reviewer has not labelled (or, adjudicating, the reviewers'
    disagreements), starting at the first one left; returns how many labels were given."""
    labels = read_labels(folder)
    if adjudicate:
        open_ = set(disagreements(labels))
        rows = [r for r in rows if r["rid"] in open_]
        mine = {rid for (rid, who) in latest(labels) if who == "adjudicator"}
    else:
        mine = set(by_reviewer(labels).get(reviewer, {}))
    total = len(rows)
    i = next((k for k, r in enumerate(rows) if r["rid"] not in mine), total)
    given, note = 0, ""
    while i < total:
        row = rows[i]
        others = None
        if adjudicate:
            others = {who: lab for who, got in by_reviewer(labels).items() for rid, lab in got.items()
                      if rid == row["rid"]}
        _show(row, i, total, len(mine), out, others)
        key = ask("> ").strip().lower()
        if key == "q":
            break
        if key == "b":
            i = max(0, i - 1)
        elif key == "s":
            i += 1
        elif key == "n":
            note = ask("note: ")
        elif key in KEYS:
            append_label(folder, row["rid"], KEYS[key], reviewer, note=note, adjudicated=adjudicate)
            mine.add(row["rid"])
            given, note, i = given + 1, "", i + 1
        else:
            out(f"unknown key {key!r}")
    out(f"{len(mine)} of {total} labelled" + (" (all done)" if len(mine) >= total else ""))
    return given
