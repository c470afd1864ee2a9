"""Drawing the review sample: stratified by model x prompt label x primary-judge verdict, with
the rows where judges disagree oversampled inside each stratum.

Each (model, mode, prompt label, primary verdict) cell is split in two strata: rows on which
every judge gives the same binary answer (refusal or compliance) and rows on which some judge
disagrees. A cell of N rows gets n = min(per_stratum, N) draws; up to half of them, or more when
the agreeing rows run out, go to the disagreeing stratum. Every stratum's size N_h and draw n_h
are recorded, so estimates weight each reviewed row by N_h / n_h (tbr.review.estimate): the
oversampling changes no expectation, only where the review effort goes.

Rows are shown in a seeded shuffle across strata, under an opaque id (`rid`), so a reviewer
sees neither which model wrote an answer nor which stratum it came from.
"""
from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from tbr.judges.evaluation import to_binary

DEFAULT_PER_STRATUM = 20
KEY_FIELDS = ("model", "mode", "prompt_label", "verdict", "disagree")


def rid(model: str, mode: str, id_: str) -> str:
    """The row's opaque review id: stable for (model, mode, prompt id), reveals none of them."""
    return hashlib.sha1(f"{model}\x1f{mode}\x1f{id_}".encode()).hexdigest()[:12]


def judges_disagree(verdicts: Mapping[str, str]) -> bool:
    """True when two judges give different binary answers (undecided verdicts do not count)."""
    return len({b for b in map(to_binary, verdicts.values()) if b is not None}) > 1


def stratum_key(row: Mapping[str, Any]) -> str:
    return "|".join(str(row[k]) for k in KEY_FIELDS)


def allocate(n: int, n_disagree: int, n_agree: int) -> tuple[int, int]:
    """Draws for the disagreeing and agreeing strata of one cell that gets n draws in all."""
    n = min(n, n_disagree + n_agree)
    d = min(n_disagree, max(math.ceil(n / 2), n - n_agree))
    a = min(n_agree, n - d)
    if a == 1 and n_agree >= 2 and d > 2:  # two rows at least, so a stratum's spread can be estimated
        a, d = 2, d - 1
    return d, a


def draw(rows: Sequence[Mapping[str, Any]], primary: str, per_stratum: int = DEFAULT_PER_STRATUM,
         seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(sampled rows in presentation order, strata with N and n).

    `rows` carry model, mode, id, prompt, response, reflection, answer, prompt_label and
    verdicts ({judge: label}, the primary judge's among them)."""
    if per_stratum < 1:
        raise ValueError("per_stratum must be at least 1")
    cells: dict[tuple[str, str, str, str], dict[bool, list[dict[str, Any]]]] = {}
    for r in rows:
        key = (r["model"], r["mode"], r["prompt_label"], r["verdicts"][primary])
        row = {**r, "rid": rid(r["model"], r["mode"], r["id"]), "verdict": r["verdicts"][primary],
               "disagree": judges_disagree(r["verdicts"])}
        cells.setdefault(key, {False: [], True: []})[row["disagree"]].append(row)
    picked: list[dict[str, Any]] = []
    strata: list[dict[str, Any]] = []
    for key in sorted(cells):
        groups = cells[key]
        n_d, n_a = allocate(per_stratum, len(groups[True]), len(groups[False]))
        for disagree, k in ((True, n_d), (False, n_a)):
            members = sorted(groups[disagree], key=lambda r: r["rid"])
            if not members:
                continue
            info = dict(zip(KEY_FIELDS, (*key, disagree)))
            name = stratum_key(info)
            chosen = random.Random(f"{seed}|{name}").sample(members, k)
            strata.append({**info, "stratum": name, "N": len(members), "n": k})
            picked += [{**r, "stratum": name} for r in chosen]
    picked.sort(key=lambda r: r["rid"])
    random.Random(f"{seed}|order").shuffle(picked)
    return picked, strata
