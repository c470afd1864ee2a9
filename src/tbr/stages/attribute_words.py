"""The features attribution perturbs: a user prompt cut into words, the focus phrase (the
trigger word, possibly several words) one feature, punctuation and spaces kept fixed."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

WORD_RE = re.compile(r"\w+(?:['’\-]\w+)*")


@dataclass(frozen=True)
class Segmented:
    """A user prompt cut into word features; the focus phrase (possibly several words) is one."""
    prompt: str
    spans: tuple[tuple[int, int], ...]  # character spans of the features in `prompt`
    focus_index: int | None

    @property
    def words(self) -> list[str]:
        return [self.prompt[a:b] for a, b in self.spans]

    def render(self, values: Sequence[str]) -> str:
        """The prompt with feature i replaced by values[i]."""
        out, prev = [], 0
        for (a, b), v in zip(self.spans, values):
            out += [self.prompt[prev:a], v]
            prev = b
        return "".join(out) + self.prompt[prev:]

    def replaced(self, i: int, value: str) -> str:
        vals = self.words
        vals[i] = value
        return self.render(vals)


def find_focus(prompt: str, focus: str) -> tuple[int, int] | None:
    """Character span of `focus` in `prompt`: whole-word match first, then any substring, case-insensitive."""
    focus = (focus or "").strip()
    if not focus or not WORD_RE.search(focus):
        return None
    m = re.search(r"(?<!\w)" + re.escape(focus) + r"(?!\w)", prompt, flags=re.IGNORECASE)
    if m is None:
        m = re.search(re.escape(focus), prompt, flags=re.IGNORECASE)
    return None if m is None else (m.start(), m.end())


def segment(prompt: str, focus: str | None = None) -> Segmented:
    """Word features of `prompt` (punctuation and spaces stay fixed). Words overlapping the focus
    span merge into one feature, so a focus phrase or a focus inside a longer word is perturbed whole."""
    words = [(m.start(), m.end()) for m in WORD_RE.finditer(prompt)]
    fspan = find_focus(prompt, focus) if focus else None
    if fspan is None:
        return Segmented(prompt, tuple(words), None)
    hit = [w for w in words if w[0] < fspan[1] and fspan[0] < w[1]]
    merged = (min(hit[0][0], fspan[0]), max(hit[-1][1], fspan[1]))
    spans = [w for w in words if w[1] <= merged[0]] + [merged] + [w for w in words if w[0] >= merged[1]]
    return Segmented(prompt, tuple(spans), spans.index(merged))


def match_case(word: str, neutral: str) -> str:
    """`neutral` capitalised like `word` (a sentence-initial 'Kill' becomes 'Love')."""
    if word[:1].isupper() and neutral[:1].islower():
        return neutral[:1].upper() + neutral[1:]
    return neutral


# ------------------------------------------------------------------------------ tokenization
