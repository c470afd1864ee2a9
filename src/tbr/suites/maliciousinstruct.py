"""MaliciousInstruct (Huang et al. 2023): 100 harmful instructions, all label unsafe.

Source: the text file of the authors' repository (one instruction per line), a CSV/JSON file
with a prompt column, or the hub copy walledai/MaliciousInstruct. The paper measures harm with a
harm classifier ("guard", which needs a model); offline, the "tbr" refusal judge stands in.
"""
from __future__ import annotations

from typing import Any

from tbr.suites._common import public_rows
from tbr.suites.base import Suite


def load(path: str | None = None) -> list[dict[str, Any]]:
    return public_rows("maliciousinstruct", "maliciousinstruct", path)


SUITES = [Suite("maliciousinstruct", "MaliciousInstruct: 100 harmful instructions (label unsafe); "
                "maliciousinstruct:/path/MaliciousInstruct.txt or the hub", load,
                default_judge="guard", offline_judge="tbr", source="maliciousinstruct")]
