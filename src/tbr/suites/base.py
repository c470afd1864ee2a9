"""The Suite record (kept apart from the registry so suite modules can import it)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    load: Callable[..., list[dict[str, Any]]]  # load(path: str | None) -> rows
    default_judge: str = "tbr"                 # the judge the paper uses on this suite
    offline_judge: str = "tbr"                 # what runs without a judge model (CPU, offline)
    source: str | None = None                  # registered public set it reads (tbr.data.registry)
