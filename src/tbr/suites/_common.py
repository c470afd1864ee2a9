"""Shared by the suites built on registered public sets: load the set, give evaluation rows."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tbr.data.public import load_public
from tbr.errors import TbrError


def public_rows(suite: str, set_name: str, path: str | None,
                type_fn: Callable[[str], str] | None = None) -> list[dict[str, Any]]:
    """Evaluation rows (id "<suite>:<id>", suite, prompt, label, type, focus) of a public set,
    read from `path` (a local file or ORG/REPO hub id) or from the set's default hub copy."""
    _, rows = load_public(f"{set_name}:{path}" if path else set_name)
    out = []
    for n, r in enumerate(rows, 1):
        rid = r.get("id")
        rid = str(rid).strip() if rid not in (None, "") else str(n)
        out.append({"id": f"{suite}:{rid}", "suite": suite, "prompt": r["prompt"].strip(),
                    "label": r["label"], "type": type_fn(r["type"]) if type_fn else r["type"],
                    "focus": r.get("focus")})
    seen: set[str] = set()
    for r in out:
        if r["id"] in seen:
            raise TbrError(f"suite {suite}: duplicate id {r['id'].split(':', 1)[1]!r}", path=path or set_name,
                           field="id")
        seen.add(r["id"])
    return out
