"""A fair token budget (generate.reflection_tokens): the answer's cap counted from the end of
any reflection, responses that ran into the budget flagged, and a response cut before any answer
judged `truncated` (counted apart, never as compliance)."""
from __future__ import annotations

from pathlib import Path

from tbr import generation as E
from tbr.judges import get_judge
from tbr.metrics import rates
from tbr.stages import generate as G
from tbr.stages.judge import apply_judge
from test_generate import _prompt_rows, model_tok, varied_model  # noqa: F401  (fixtures)

REFL = "This query asks for a list of garden vegetables, which is harmless."


def _decode(ids) -> str:
    return " ".join(ids)   # a "tokenizer" whose tokens are words


def test_answer_budget_counts_from_the_end_of_the_reflection() -> None:
    long_answer = "Sure, here are some: " + " ".join(f"veg{i}" for i in range(30))
    text = f"{REFL} {long_answer}"
    cut, was_cut = G.answer_budget(text, text.split(), _decode, 10)
    assert was_cut and cut == f"{REFL} " + " ".join(long_answer.split()[:10])   # the reflection is free
    short = f"{REFL} Sure, tomatoes."
    assert G.answer_budget(short, short.split(), _decode, 10) == (short, False)
    plain, was_cut = G.answer_budget(long_answer, long_answer.split(), _decode, 10)   # no reflection
    assert was_cut and plain == " ".join(long_answer.split()[:10])
    # a reflection with no answer after it is never cut (it is what `truncated` is for)
    assert G.answer_budget(REFL, REFL.split(), _decode, 3) == (REFL, False)


def test_cut_before_any_answer_is_its_own_outcome() -> None:
    rows = [{"id": "a", "prompt": "p", "response": REFL, "reflection": REFL, "answer": "", "truncated": True},
            {"id": "b", "prompt": "p", "response": "Sure, tomatoes.", "reflection": None,
             "answer": "Sure, tomatoes.", "truncated": True},
            {"id": "c", "prompt": "p", "response": REFL, "reflection": REFL, "answer": "", "truncated": False}]
    out = apply_judge(get_judge("keywords"), rows)
    assert out[0]["label"] == "truncated" and "before any answer" in out[0]["raw"]
    assert out[1]["label"] == "full_compliance"    # cut mid-answer: judged on what it says
    assert out[2]["label"] != "truncated"          # ended by itself: the judge decides
    r = rates(["full_compliance", "truncated", "full_refusal"])
    assert (r["n"], r["compliance"], r["truncated"]) == (2, 0.5, 1)   # never in the rate
    assert "truncated" not in rates(["full_compliance"])                # older metrics unchanged


def test_finished_flags_and_greedy_prefix(model_tok) -> None:  # noqa: F811
    model, tok = model_tok
    texts = [E.render_chat(tok, [{"role": "user", "content": p["prompt"]}]) for p in _prompt_rows(4)]
    ended: list[bool] = []
    short = E.hf_generate_texts(model, tok, texts, max_new_tokens=4, batch_size=2, progress=False, finished=ended)
    longer = E.hf_generate_texts(model, tok, texts, max_new_tokens=12, batch_size=2, progress=False)
    assert len(ended) == 4 and not any(ended)   # the random tiny model never stops within 4 tokens
    # greedy decoding does not depend on the cap: the longer output starts with the shorter one,
    # which is why cutting a longer generation equals generating with the answer's budget
    for a, b in zip(short, longer):
        assert b.startswith(a)
    stopped: list[bool] = []
    E.hf_generate_texts(model, tok, texts, max_new_tokens=12, batch_size=2, progress=False, finished=stopped,
                        stop=[t[:1] for t in longer if t][:1])
    assert any(stopped)


def test_generate_responses_flags_truncation(tmp_path: Path, varied_model: Path) -> None:  # noqa: F811
    prompts = _prompt_rows(3)
    opts = dict(model_name=str(varied_model), model_label="tiny", modes=["plain"], max_new_tokens=5,
                batch_size=3, dtype="float32", progress=False)
    G.generate_responses(tmp_path / "a.jsonl", prompts, **opts)
    G.generate_responses(tmp_path / "b.jsonl", prompts, **opts, reflection_tokens=7)
    from tbr.io import read_jsonl
    a, b = read_jsonl(tmp_path / "a.jsonl"), read_jsonl(tmp_path / "b.jsonl")
    assert all(r["truncated"] is True for r in a + b)
    # no reflection in these answers: the answer's budget is the same 5 tokens either way
    assert [r["response"] for r in a] == [r["response"] for r in b]
