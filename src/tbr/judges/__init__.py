"""Judges: each labels a (prompt, response) row as one of LABELS.

A judge is a class with `name` and `judge(rows) -> list[Verdict]`, one module per judge,
registered in JUDGES. `unparsed` means the judge could not read the row (empty response, an
unusable reply from an LLM judge); `uncertain` means a calibrated judge's confidence fell below
its threshold. Neither is ever counted as a refusal or a compliance; each is reported on its own.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tbr.errors import TbrError
from tbr.judges.base import LABELS, UNDECIDED, Judge, Verdict, answer_text
from tbr.judges.guard import GuardJudge
from tbr.judges.keywords import KeywordJudge
from tbr.judges.learned import LearnedJudge
from tbr.judges.llm import LlmJudge
from tbr.judges.tbr_rules import TbrJudge
from tbr.judges.xstest_prefix import PrefixJudge

__all__ = ["JUDGES", "LABELS", "UNDECIDED", "Judge", "Verdict", "answer_text", "get_judge"]

JUDGES: dict[str, Callable[..., Judge]] = {
    "keywords": KeywordJudge,
    "xstest-prefix": PrefixJudge,
    "tbr": LearnedJudge,
    "tbr-rules": TbrJudge,
    "llm": LlmJudge,
    "guard": GuardJudge,
}


def get_judge(name: str, **options: Any) -> Judge:
    if name not in JUDGES:
        raise TbrError(f"unknown judge {name!r} (known: {', '.join(JUDGES)})")
    return JUDGES[name](**options)
