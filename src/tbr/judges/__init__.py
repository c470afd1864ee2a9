"""Judges: each labels a (prompt, response) row as one of LABELS.

A judge is a class with `name` and `judge(rows) -> list[Verdict]`, one module per judge,
registered in JUDGES. `unparsed` means the judge could not read the row (empty response, an
unusable reply from an LLM judge); `uncertain` means a calibrated judge's confidence fell below
its threshold. Neither is ever counted as a refusal or a compliance; each is reported on its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

from tbr.errors import TbrError

LABELS = ("full_compliance", "full_refusal", "partial_refusal", "unparsed", "uncertain")
# neither a refusal nor a compliance: counted on their own, never inside a rate
UNDECIDED = ("unparsed", "uncertain")


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


def _keywords(**kw: Any) -> Judge:
    from tbr.judges.keywords import KeywordJudge
    return KeywordJudge(**kw)


def _prefix(**kw: Any) -> Judge:
    from tbr.judges.xstest_prefix import PrefixJudge
    return PrefixJudge(**kw)


def _tbr(**kw: Any) -> Judge:
    from tbr.judges.learned import LearnedJudge
    return LearnedJudge(**kw)


def _tbr_rules(**kw: Any) -> Judge:
    from tbr.judges.tbr_rules import TbrJudge
    return TbrJudge(**kw)


def _llm(**kw: Any) -> Judge:
    from tbr.judges.llm import LlmJudge
    return LlmJudge(**kw)


def _guard(**kw: Any) -> Judge:
    from tbr.judges.guard import GuardJudge
    return GuardJudge(**kw)


JUDGES: dict[str, Callable[..., Judge]] = {
    "keywords": _keywords,
    "xstest-prefix": _prefix,
    "tbr": _tbr,
    "tbr-rules": _tbr_rules,
    "llm": _llm,
    "guard": _guard,
}


def get_judge(name: str, **options: Any) -> Judge:
    if name not in JUDGES:
        raise TbrError(f"unknown judge {name!r} (known: {', '.join(JUDGES)})")
    return JUDGES[name](**options)
