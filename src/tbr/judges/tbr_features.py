"""Features for the learned part of the `tbr` judge (numpy only, no sklearn at inference).

One row becomes a sparse vector: a list of (index, value) pairs in a space of DIM hashed
dimensions. Three groups:
1. the rules' own reading (tbr_rules): their label and which rule fired, the kind of the first,
   second and last sentence, how many sentences of each kind, the content words before and
   after the first refusal, whether a reflection was stripped, and what the prompt looks like
   (a request, a yes/no question, a legality question);
2. hashed word 1-2-grams of the answer's first, second and last sentence, each in its own
   namespace, and a bag of the answer's words;
3. hashed character 3-5-grams of the first sentence (catches "I'm sorry, but" spelled any way).
Hashing uses crc32, so indices are the same in every process (Python's hash() is salted).
"""
from __future__ import annotations

import math
import re
import zlib
from typing import Any, Mapping

from tbr.judges import tbr_rules as R

DIM = 1 << 14
_WORD = re.compile(r"[a-z0-9']+")
_KINDS = ("refusal", "lecture", "alternative", "filler", "content")
_REASONS = (("refusal", "then answer"), ("answer", "then refusal"), ("refusal", "no answer"),
            ("warning then answer",), ("lecture without",), ("only alternatives",), ("no refusal",), ("empty",))


def _idx(key: str) -> int:
    return zlib.crc32(key.encode("utf-8")) % DIM


def analyse(answer: str, prompt: str) -> list[Any]:
    """The rules' sentence tags (tbr_rules._Sent) for one answer, as `classify` computes them."""
    units = R._units(R._blank_code(R._norm(answer)))
    stems = frozenset(w[:5] for w in re.findall(r"[a-z']+", R._norm(prompt).lower())) \
        if R._REQUEST.match(R._norm(prompt)) else None
    sents, alt_mode = [], False
    for u in units:
        t = R._tag(u, alt_mode, stems)
        alt_mode = t.kind == "alternative" or (alt_mode and bool(R._LIST_ITEM.match(u)))
        sents.append(t)
    return sents


def _grams(text: str, ns: str, out: dict[int, float], weight: float = 1.0, bigrams: bool = True) -> None:
    words = _WORD.findall(text.lower())
    keys = [f"{ns}:{w}" for w in words]
    if bigrams:
        keys += [f"{ns}:{a} {b}" for a, b in zip(words, words[1:])]
    _add(keys, out, weight)


def _add(keys: list[str], out: dict[int, float], weight: float) -> None:
    """Hashed keys into `out`, L2-normalised per group so long texts don't dominate."""
    if not keys:
        return
    v = weight / math.sqrt(len(keys))
    for k in keys:
        i = _idx(k)
        out[i] = out.get(i, 0.0) + v


def _chars(text: str, ns: str, out: dict[int, float], weight: float = 1.0) -> None:
    t = " " + " ".join(_WORD.findall(text.lower()[:160])) + " "
    keys = [f"{ns}:{t[i:i + n]}" for n in (3, 4, 5) for i in range(len(t) - n + 1)]
    _add(keys, out, weight)


def _dense(out: dict[int, float], name: str, value: float = 1.0) -> None:
    i = _idx("d:" + name)
    out[i] = out.get(i, 0.0) + value


def featurise(row: Mapping[str, Any]) -> tuple[dict[int, float], str, str]:
    """(sparse features, rules label, rules reason) for one row."""
    prompt = str(row.get("prompt") or "")
    ans = row.get("answer")
    if isinstance(ans, str) and ans.strip():
        answer, reflected = ans, False
    else:
        refl, answer = R.strip_reflection(str(row.get("response") or ""))
        reflected = bool(refl)
    label, reason = R.classify(answer, prompt)
    f: dict[int, float] = {}
    _dense(f, "bias")
    _dense(f, "rule:" + label)
    for words in _REASONS:
        if all(w in reason for w in words):
            _dense(f, "reason:" + " ".join(words))
    m = re.search(r"\((\w+)\)", reason)
    if m:
        _dense(f, "rulename:" + m.group(1))
    _dense(f, "reflected", float(reflected))
    p = R._norm(prompt)
    for name, rx in (("request", R._REQUEST), ("yesno", R._YESNO), ("legalq", R._LEGAL_QUESTION)):
        if rx.search(p):
            _dense(f, "prompt:" + name)
    sents = analyse(answer, prompt) if label != "unparsed" else []
    n = len(sents)
    _dense(f, "n_units", math.log1p(n))
    words = len(answer.split())
    _dense(f, "words", math.log1p(words))
    _dense(f, "short", float(words <= 3))
    for kind in _KINDS:
        c = sum(s.kind == kind for s in sents)
        _dense(f, "count:" + kind, math.log1p(c))
        _dense(f, "frac:" + kind, c / n if n else 0.0)
    for pos, s in (("first", sents[0] if sents else None), ("second", sents[1] if n > 1 else None),
                   ("last", sents[-1] if sents else None)):
        if s is not None:
            _dense(f, f"{pos}:{s.kind}")
            if s.kind == "refusal":
                _dense(f, f"{pos}:rule:{s.rule}")
    content = sum(s.words for s in sents)
    ref = [i for i, s in enumerate(sents) if s.kind == "refusal"]
    _dense(f, "content", math.log1p(content))
    if ref:
        before = sum(s.words for s in sents[:ref[0]] if s.kind == "content")
        _dense(f, "before", math.log1p(before))
        _dense(f, "after", math.log1p(content - before))
        _dense(f, "refpos", ref[0] / n)
        _dense(f, "tail", math.log1p(sents[ref[0]].words))
    if any(s.rule == "code" for s in sents):
        _dense(f, "code")
    texts = [s.text for s in sents if not s.text.startswith(("CODEBLOCK", "CODELINE"))]
    if texts:
        _grams(texts[0], "f", f)
        _chars(texts[0], "c", f)
        _grams(texts[-1], "l", f)
        if len(texts) > 1:
            _grams(texts[1], "s", f)
    _grams(R._norm(answer)[:2000], "a", f, bigrams=False)
    return f, label, reason
