"""What every report writer shares."""
from __future__ import annotations

from typing import Any


def ordered_labels(m: dict[str, Any]) -> list[str]:
    """Models in reading order: untouched first, then baselines, then TBR cells (metrics.json
    stores them sorted by name, which would put 'baseline' before 'untouched')."""
    def rank(lab: str) -> tuple[int, str]:
        tail = lab.split(":")[-1]
        return (0 if tail.endswith("untouched") else 1 if tail.startswith("baseline") else 2, lab)
    cells = m.get("cells", {})
    return sorted(m["models"], key=lambda lab: (rank(lab)[0], cells.get(lab, {}).get("gamma", 0.0), lab))
