"""Record schemas shared by every stage. The fields are the contract; see architecture.md.

- training example: id, kind (general|safety), prompt, response, reflection (or null), category, source
- evaluation prompt: id, suite, prompt, label (safe|unsafe), type, focus
- response: id, suite, prompt, mode, response, reflection, answer, model
- judgement: the response's fields plus label (a judge label), judge, raw
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tbr.errors import TbrError

STR = (str,)
OPT_STR = (str, type(None))

TRAIN_SCHEMA = {"id": STR, "kind": STR, "prompt": STR, "response": STR, "reflection": OPT_STR,
                "category": OPT_STR, "source": STR}
EVAL_SCHEMA = {"id": STR, "suite": STR, "prompt": STR, "label": STR, "type": STR, "focus": OPT_STR}
RESPONSE_SCHEMA = {"id": STR, "suite": STR, "prompt": STR, "mode": STR, "response": STR,
                   "reflection": OPT_STR, "answer": STR, "model": STR}
JUDGE_INPUT_SCHEMA = {"prompt": STR, "response": STR}

HARM_CATEGORIES = ("violent_crimes", "hate_discrimination", "privacy", "fake_news", "sexual_content",
                   "self_harm", "weapons")
XSTEST_TYPES = ("homonyms", "figurative_language", "safe_targets", "safe_contexts", "definitions",
                "real_discrimination_nonsense_group", "nonsense_discrimination_real_group",
                "historical_events", "privacy_public", "privacy_fictional")
PROMPT_LABELS = ("safe", "unsafe")


def check_values(rows: Iterable[Mapping[str, Any]], field: str, allowed: Iterable[str], where: str) -> None:
    allowed = tuple(allowed)
    for n, r in enumerate(rows, 1):
        if r.get(field) not in allowed:
            raise TbrError(f"expected one of {', '.join(allowed)}, got {r.get(field)!r}",
                           path=where, line=n, field=field)


def check_nonempty(rows: Iterable[Mapping[str, Any]], where: str, fields: Iterable[str] = ("prompt",)) -> None:
    fields = tuple(fields)
    for n, r in enumerate(rows, 1):
        for f in fields:
            if not str(r.get(f) or "").strip():
                raise TbrError("must not be empty", path=where, line=n, field=f)
