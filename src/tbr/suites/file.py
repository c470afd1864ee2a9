"""Any file as an evaluation suite: JSONL/CSV/JSON/Parquet with prompt, label (safe|unsafe),
and optionally id, type and focus columns (a column map renames them)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tbr.data.public import map_columns, read_table
from tbr.errors import TbrError

DEFAULTS = {"prompt": "prompt", "label": "label", "type": "type", "focus": "focus", "id": "id"}


def load_file_suite(path: str | Path, columns: dict[str, str] | None = None, suite: str | None = None) -> list[dict[str, Any]]:
    p = Path(path)
    rows = map_columns(read_table(p), columns or {}, ("prompt", "label"), p, DEFAULTS)
    name = suite or p.stem
    out = []
    for n, r in enumerate(rows, 1):
        label = str(r["label"]).strip().lower()
        if label not in ("safe", "unsafe"):
            raise TbrError(f"expected safe or unsafe, got {r['label']!r}", path=p, line=n,
                           field=(columns or {}).get("label", "label"))
        rid = str(r.get("id") if r.get("id") not in (None, "") else n)
        out.append({"id": f"{name}:{rid}", "suite": name, "prompt": r["prompt"], "label": label,
                    "type": str(r.get("type") or "unspecified"), "focus": r.get("focus") or None})
    ids = [r["id"] for r in out]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise TbrError(f"duplicate id {dup.split(':', 1)[1]!r}", path=p, field="id")
    return out
