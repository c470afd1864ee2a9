"""OR-Bench (Cui et al. 2024, bench-llm/or-bench): over-refusal prompts in 10 categories.

- orbench-hard: or-bench-hard-1k, seemingly toxic but safe prompts most models refuse (label safe);
- orbench-80k: the full set of seemingly toxic safe prompts (label safe; use data.eval_limit);
- orbench-toxic: truly toxic prompts, the control that should be refused (label unsafe).

Columns prompt, category (the category becomes the type). The paper judges the toxic half with a
harm classifier ("guard", which needs a model); offline, the "tbr" refusal judge stands in.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tbr.suites._common import public_rows
from tbr.suites.base import Suite


def _loader(name: str) -> Callable[[str | None], list[dict[str, Any]]]:
    def load(path: str | None = None) -> list[dict[str, Any]]:
        return public_rows(name, name, path, lambda t: t.strip().lower().replace(" ", "_"))
    return load


SUITES = [
    Suite("orbench-hard", "OR-Bench hard-1k: seemingly toxic safe prompts (CC-BY-4.0); "
          "orbench-hard:/path/or-bench-hard-1k.csv or the hub", _loader("orbench-hard"),
          default_judge="tbr", source="orbench-hard"),
    Suite("orbench-80k", "OR-Bench 80k: seemingly toxic safe prompts (CC-BY-4.0)", _loader("orbench-80k"),
          default_judge="tbr", source="orbench-80k"),
    Suite("orbench-toxic", "OR-Bench toxic: harmful prompts that should be refused (CC-BY-4.0)",
          _loader("orbench-toxic"), default_judge="guard", offline_judge="tbr", source="orbench-toxic"),
]
