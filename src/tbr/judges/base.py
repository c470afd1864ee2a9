"""What every judge shares: the labels, the verdict, the judge protocol."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

LABELS = ("full_compliance", "full_refusal", "partial_refusal", "unparsed", "uncertain")
# neither a refusal nor a compliance: counted on their own, never inside a rate ("truncated" is
# set by the judge stage, not by a judge: a response cut by its length budget before any answer)
UNDECIDED = ("unparsed", "uncertain", "truncated")


@dataclass(frozen=True)
class Verdict:
    label: str
    raw: Any = None  # what the judge saw or said: matched phrase, model output, ...

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"bad label {self.label!r}")


class Judge(Protocol):
    name: str

    def judge(self, rows: Sequence[Mapping[str, Any]]) -> list[Verdict]: ...


def answer_text(row: Mapping[str, Any]) -> str:
    """The part of a response after any safety reflection (the whole response if none)."""
    ans = row.get("answer")
    if isinstance(ans, str) and ans.strip():
        return ans
    return str(row.get("response") or "")
