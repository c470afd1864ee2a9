"""Evaluation suites: each turns a source into evaluation prompts (id, suite, prompt, label,
type, focus) and names the judge that the paper would use on it.

A suite is one small module exposing `SUITES`; list it in _MODULES. A suite built on a public set
reads the hub by default, or a local file given as `NAME:PATH` (e.g.
`xstest:/data/xstest_prompts.csv`) or as load_suite's `path`. A path ending in
.jsonl/.csv/.json/.parquet given where a suite name is expected is loaded as a file suite
(see tbr.suites.file).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from tbr.data.sampling import stratified_sample
from tbr.data.sources import builtin_eval
from tbr.errors import TbrError
from tbr.suites.base import Suite
from tbr.suites.file import load_file_suite

_MODULES = ("tbr.suites.xstest", "tbr.suites.orbench", "tbr.suites.maliciousinstruct", "tbr.suites.jailbreaks")
FILE_SUFFIXES = (".jsonl", ".csv", ".json", ".parquet")


def _builtin(path: str | None = None) -> list[dict[str, Any]]:
    if path:
        raise TbrError("suite 'builtin' takes no path")
    return builtin_eval()


SUITES: dict[str, Suite] = {
    "builtin": Suite("builtin", "tbr's own pseudo-harmful suite: safe prompts in XSTest's 10 types "
                     "and unsafe contrasts sharing their focus words", _builtin),
}
for _m in _MODULES:
    for _s in importlib.import_module(_m).SUITES:
        SUITES[_s.name] = _s


def split_suite(name: str) -> tuple[str, str | None]:
    """"xstest:/data/x.csv" -> ("xstest", "/data/x.csv"); a plain name or path -> (name, None)."""
    head, sep, rest = name.partition(":")
    if sep and head in SUITES and rest:
        return head, rest
    return name, None


def load_suite(name: str, limit: int | None = None, seed: int = 0, path: str | None = None) -> list[dict[str, Any]]:
    """Evaluation prompts of a suite, subsampled per (label, type) when `limit` is set.

    `name` is a registered suite, `SUITE:PATH`, or a file; `path` a local file (or hub id) for
    a registered suite."""
    name, inline = split_suite(name)
    if inline is not None:
        if path is not None and path != inline:
            raise TbrError(f"suite {name!r}: two paths given ({inline} and {path})")
        path = inline
    if name in SUITES:
        rows = SUITES[name].load(path)
    elif Path(name).suffix in FILE_SUFFIXES:
        rows = load_file_suite(name)
    else:
        raise TbrError(f"unknown suite {name!r} (known: {', '.join(SUITES)}, SUITE:/path/to/file, or a file path)")
    if not rows:
        raise TbrError(f"suite {name!r} has no prompts")
    return stratified_sample(rows, limit, key=lambda r: (r["label"], r["type"]), seed=seed)


def load_suite_sampled(name: str, limit: int | None = None, seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The suite's prompts and what was kept of them: {suite, kept, total, limit,
    stratified_by, seed}. Reports print "kept of total" whenever a limit cut the suite."""
    whole = load_suite(name, None, seed)
    rows = stratified_sample(whole, limit, key=lambda r: (r["label"], r["type"]), seed=seed)
    return rows, {"suite": name, "kept": len(rows), "total": len(whole), "limit": limit,
                  "stratified_by": "label x type" if len(rows) < len(whole) else None, "seed": seed}


__all__ = ["SUITES", "Suite", "load_suite", "load_suite_sampled", "split_suite"]
