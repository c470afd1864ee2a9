"""Public sets and arbitrary files, mapped onto tbr's training schema.

`load_public_training(kind, source, columns)`: source is a registered name (see PUBLIC), or a
path to a JSONL/CSV/JSON/Parquet file whose columns are mapped by `columns`
(tbr field -> file column; defaults: prompt, response, category, id).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from tbr.errors import TbrError

TABLE_SUFFIXES = (".jsonl", ".csv", ".json", ".parquet")


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL, CSV, JSON (list of objects) or Parquet file, as dicts."""
    path = Path(path)
    if not path.exists():
        raise TbrError("file not found", path=path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        from tbr.io import read_jsonl
        return read_jsonl(path)
    if suffix == ".csv":
        try:
            with open(path, newline="", encoding="utf-8") as f:
                return [dict(r) for r in csv.DictReader(f)]
        except UnicodeDecodeError as e:
            raise TbrError(f"not valid UTF-8 (byte {e.start})", path=path) from None
        except csv.Error as e:
            raise TbrError(f"not valid CSV ({e})", path=path) from None
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise TbrError(f"not valid UTF-8 (byte {e.start})", path=path) from None
        except json.JSONDecodeError as e:
            raise TbrError(f"not valid JSON ({e.msg})", path=path, line=e.lineno) from None
        if isinstance(data, dict):
            # common layouts: {"data": [...]} / {"train": [...]}
            for k in ("data", "train", "rows", "instances"):
                if isinstance(data.get(k), list):
                    data = data[k]
                    break
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise TbrError("expected a JSON list of objects", path=path)
        return data
    if suffix == ".parquet":
        import pyarrow.parquet as pq
        try:
            return pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises many types for a bad file
            raise TbrError(f"not a readable Parquet file ({str(e).splitlines()[0]})", path=path) from None
    raise TbrError(f"unsupported file type {suffix!r} (expected one of {', '.join(TABLE_SUFFIXES)})", path=path)


def map_columns(rows: list[dict[str, Any]], mapping: dict[str, str], required: tuple[str, ...],
                path: str | Path, defaults: dict[str, str]) -> list[dict[str, Any]]:
    """Rename file columns to tbr fields; a missing required column is an error naming it."""
    cols = {**defaults, **mapping}
    if rows:
        present = set(rows[0])
        for field in required:
            if cols.get(field) not in present:
                raise TbrError(f"column {cols.get(field)!r} (for tbr field '{field}') not found; "
                               f"columns are: {', '.join(sorted(present))}", path=path)
    out = []
    for n, r in enumerate(rows, 1):
        row = {f: r.get(c) for f, c in cols.items() if c in r}
        for field in required:
            v = row.get(field)
            if not isinstance(v, str) or not v.strip():
                raise TbrError("expected a non-empty string", path=path, line=n, field=cols[field])
        out.append(row)
    return out


def load_public_training(kind: str, source: str, columns: dict[str, str]) -> list[dict[str, Any]]:
    p = Path(source)
    if p.suffix.lower() not in TABLE_SUFFIXES:
        raise TbrError(f"data.{kind}.source: unknown source {source!r} (expected builtin, a registered public "
                       f"set, or a file ending in {', '.join(TABLE_SUFFIXES)})")
    raw = read_table(p)
    rows = map_columns(raw, columns, ("prompt", "response"), p,
                       {"prompt": "prompt", "response": "response", "category": "category", "id": "id",
                        "reflection": "reflection"})
    out = []
    for n, r in enumerate(rows, 1):
        out.append({"id": str(r.get("id") or f"{p.stem}-{n:05d}"), "kind": kind, "prompt": r["prompt"],
                    "response": r["response"], "reflection": None, "category": r.get("category"),
                    "source": str(p), **({"builtin_reflection": r["reflection"]} if r.get("reflection") else {})})
    ids = [r["id"] for r in out]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise TbrError(f"duplicate id {dup!r}", path=p, field="id")
    return out
