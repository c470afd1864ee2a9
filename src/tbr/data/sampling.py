"""Seeded, stratified subsampling (pure)."""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T", bound=Mapping[str, Any])


def stratified_sample(rows: Sequence[T], n: int | None, key: Callable[[T], Any], seed: int = 0) -> list[T]:
    """At most `n` rows, spread over strata in proportion to their sizes (largest remainders),
    chosen by a seeded shuffle within each stratum; the result keeps the input order."""
    if n is None or n >= len(rows):
        return list(rows)
    if n <= 0:
        return []
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[key(r)].append(i)
    total = len(rows)
    quotas = {k: n * len(v) / total for k, v in groups.items()}
    take = {k: int(q) for k, q in quotas.items()}
    short = n - sum(take.values())
    # largest remainder; ties broken by stratum name so the result is deterministic
    for k in sorted(quotas, key=lambda k: (-(quotas[k] - take[k]), str(k)))[:short]:
        take[k] += 1
    rng = random.Random(seed)
    chosen: list[int] = []
    for k in sorted(groups, key=str):
        idx = list(groups[k])
        rng.shuffle(idx)
        chosen.extend(idx[: take[k]])
    return [rows[i] for i in sorted(chosen)]
