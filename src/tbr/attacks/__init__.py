"""Attacks as named prompt transforms (the paper's open question 3: does reflecting open new jailbreaks?).

Each attack is one small module with NAME, DESCRIPTION and `transform(row, seed) -> row`. A
transform is deterministic in (seed, row id), and keeps the row's id, label, type and focus; it
rewrites `prompt`, or adds `turns` (earlier conversation, many-shot) or `prefill` (the start of
the model's reply). `expand` wraps an evaluation set in several attacks: unwrapped rows stay in
as attack `none`; a wrapped row's pipeline key becomes `<id>@<attack>`, with the original id in
`orig_id`, because every later stage joins rows by `id`. The templates are the project's own text.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from tbr.errors import TbrError

NONE = "none"
_MODULES = ("roleplay", "prefix_injection", "refusal_suppression", "cognitive_overload", "logical_argument",
            "payload_splitting", "obfuscation", "many_shot", "reflection_injection", "prefill")


@dataclass(frozen=True)
class Attack:
    name: str
    description: str
    transform: Callable[[dict[str, Any], int], dict[str, Any]]


ATTACKS: dict[str, Attack] = {}
for _m in _MODULES:
    _mod = importlib.import_module(f"tbr.attacks.{_m}")
    ATTACKS[_mod.NAME] = Attack(_mod.NAME, _mod.DESCRIPTION, _mod.transform)


def resolve(names: Sequence[str]) -> list[str]:
    """Attack names in registry order, `all` meaning every one; `none` is implied, never wrapped."""
    out: list[str] = []
    for n in names:
        if n == "all":
            out += list(ATTACKS)
        elif n in ATTACKS:
            out.append(n)
        elif n != NONE:
            raise TbrError(f"unknown attack {n!r} (known: all, {', '.join(ATTACKS)}; `tbr eval --list-attacks`)")
    return [a for a in ATTACKS if a in out]


def wrap(row: dict[str, Any], attack: str, seed: int) -> dict[str, Any]:
    """One row under one attack: the transform's output with attack, orig_id and the pipeline key."""
    out = ATTACKS[attack].transform(dict(row), seed)
    return {**out, "id": f"{row['id']}@{attack}", "orig_id": row["id"], "attack": attack}


def expand(rows: Sequence[dict[str, Any]], names: Sequence[str], seed: int,
           only: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Every row unwrapped (attack `none`) and, attack by attack, under each named attack (only the
    rows whose id is in `only`, when given)."""
    attacks = resolve(names)
    out = [{**r, "attack": NONE} for r in rows]
    for a in attacks:
        out += [wrap(r, a, seed) for r in rows if only is None or r["id"] in only]
    return out


def describe() -> list[tuple[str, str]]:
    return [(a.name, a.description) for a in ATTACKS.values()]
