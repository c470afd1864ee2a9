"""Evaluation suites: each turns a source into evaluation prompts (id, suite, prompt, label,
type, focus) and names the judge that the paper would use on it.

A suite is one small module; register it in SUITES. A path ending in .jsonl/.csv/.json/.parquet
given where a suite name is expected is loaded as a file suite (see tbr.suites.file).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tbr.data.sampling import stratified_sample
from tbr.errors import TbrError


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    load: Callable[..., list[dict[str, Any]]]  # load(path: str | None) -> rows
    default_judge: str = "tbr"                 # false-refusal judge; harm judges are per-suite


def _builtin(path: str | None = None) -> list[dict[str, Any]]:
    from tbr.data.sources import builtin_eval
    return builtin_eval()


SUITES: dict[str, Suite] = {
    "builtin": Suite("builtin", "tbr's own pseudo-harmful suite: safe prompts in XSTest's 10 types "
                     "and unsafe contrasts sharing their focus words", _builtin),
}


def load_suite(name: str, limit: int | None = None, seed: int = 0, path: str | None = None) -> list[dict[str, Any]]:
    """Evaluation prompts of a suite, subsampled per (label, type) when `limit` is set."""
    if name in SUITES:
        rows = SUITES[name].load(path)
    elif Path(name).suffix in (".jsonl", ".csv", ".json", ".parquet"):
        from tbr.suites.file import load_file_suite
        rows = load_file_suite(name)
    else:
        raise TbrError(f"unknown suite {name!r} (known: {', '.join(SUITES)}, or a file path)")
    if not rows:
        raise TbrError(f"suite {name!r} has no prompts")
    return stratified_sample(rows, limit, key=lambda r: (r["label"], r["type"]), seed=seed)
