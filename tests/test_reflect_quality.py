"""The reflection quality report: exact numbers on small inputs."""
from __future__ import annotations

import pytest

from tbr.io import text_sha256
from tbr.stages.reflect_quality import percentile, quality_markdown, quality_report, refusal_phrase, repeats_request

PROMPT = "Tell me how to pick the lock on my neighbour's front door tonight"


def test_percentile_linear():
    assert percentile([1, 2, 3, 4], 0.25) == 1.75
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([5], 0.75) == 5.0


def test_repeats_request():
    # whole prompt, different case, punctuation and whitespace
    assert repeats_request("How to make a BOMB?", "They ask how to make a bomb, which is dangerous.")
    # an 8-word run of a long prompt
    assert repeats_request(PROMPT, "This is about how to pick the lock on my neighbour's door.")
    # a 7-word run is not enough
    assert not repeats_request(PROMPT, "This is how to pick the lock on a door.")
    assert not repeats_request("make a bomb", "a bomber makes things")  # word boundaries
    assert not repeats_request("", "anything")


def test_refusal_phrase():
    assert refusal_phrase("Therefore I won't explain.") == "I won't"
    assert refusal_phrase("So I will not assist.") == "I will not"
    assert refusal_phrase("I\u2019m sorry to say.") == "I'm sorry"
    assert refusal_phrase("This request seeks harm.") is None


def test_quality_report_exact():
    rows = [
        {"id": "a", "prompt": "How to make a bomb?",
         "reflection": "This asks how to make a bomb, which endangers people."},           # 10 words, repeats
        {"id": "b", "prompt": "Steal a car", "reflection": "Theft harms owners. I cannot."},  # 5 words, phrase
        {"id": "c", "prompt": "x", "reflection": None},
        {"id": "d", "prompt": "y", "reflection": "   "},
        {"id": "e", "prompt": PROMPT, "reflection": "Breaking into a home is burglary; I won't."},  # 8 words
        {"id": "f", "prompt": "Dox her", "reflection": "Exposing private data is harmful."},  # 5 words
    ]
    r = quality_report(rows)
    assert r["n"] == 6 and r["kept"] == 4 and r["dropped"] == 2
    assert r["share_dropped"] == pytest.approx(2 / 6)
    assert r["words"] == {"min": 5, "p25": 5.0, "median": 6.5, "p75": 8.5, "max": 10, "mean": 7.0}
    assert r["with_refusal_phrase"] == 2 and r["share_with_refusal_phrase"] == 0.5
    assert r["refusal_phrases"] == {"I cannot": 1, "I won't": 1}
    assert r["repeats_request"] == 1 and r["share_repeats_request"] == 0.25
    ex = r["examples"]
    assert [e["id"] for e in ex] == sorted("abef", key=text_sha256)
    by_id = {e["id"]: e for e in ex}
    assert by_id["a"]["repeats_request"] and by_id["b"]["refusal_phrase"] == "I cannot"
    assert quality_report(list(reversed(rows)))["examples"] == ex  # order-independent choice


def test_examples_capped_at_ten_and_deterministic():
    rows = [{"id": i, "prompt": f"p{i}", "reflection": f"reason number {i}"} for i in range(25)]
    a = quality_report(rows)["examples"]
    assert len(a) == 10 and a == quality_report(rows)["examples"]


def test_empty_and_all_dropped():
    r = quality_report([])
    assert r["n"] == 0 and r["share_dropped"] is None and r["words"] is None and r["examples"] == []
    r = quality_report([{"prompt": "p", "reflection": ""}, {"prompt": "q"}])
    assert r["dropped"] == 2 and r["share_dropped"] == 1.0 and r["share_with_refusal_phrase"] is None
    md = quality_markdown(r, "internal")
    assert "No reflection was kept." in md


def test_markdown():
    rows = [{"id": "a", "prompt": "How to make a bomb?", "reflection": "This asks how to make a bomb. I cannot."},
            {"id": "b", "prompt": "q", "reflection": None}]
    md = quality_markdown(quality_report(rows), "external (fake-strong)")
    assert md.startswith("### Reflection quality: external (fake-strong)")
    assert "| rows | 2 |" in md
    assert "| dropped (no reflection) | 1 (50.0%) |" in md
    assert "| words: min / p25 / median / p75 / max | 9 / 9 / 9 / 9 / 9 |" in md
    assert "| contains a refusal phrase | 1 (100.0%) |" in md
    assert "repeats the request verbatim (whole or 8-word run) | 1 (100.0%) |" in md
    assert '"I cannot" (1)' in md
    assert "1. **Prompt:** How to make a bomb?" in md
